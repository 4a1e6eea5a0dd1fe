"""Pure formatting and permission logic of the bot (no Discord connection)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import discord
import pytest
from aiohttp import web

from bot import checks
from bot.checks import can_cancel, can_manage_limits, can_post_videos, can_reroll
from bot.cogs.admin import Admin
from bot.cogs.animate import Animate
from bot.cogs.mux import MAX_AUDIO_BYTES, Mux, check_attachment, upload_path
from bot.delivery.progress import read_preview
from bot.delivery.results import upload_too_large
from bot.guild_limits import GuildLimits
from bot.job_buttons import JobButton, progress_view, result_view
from bot.text import limits, messages
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import Job, JobKind, JobStatus


def make_job(**changes) -> Job:
    params = RenderParams(prompt="a cat in a sunflower field", frames=16, seed=1234)
    base = dict(
        id=42,
        kind=JobKind.ANIMATE,
        status=JobStatus.QUEUED,
        params=params,
        seed=1234,
        guild_id=1,
        origin_id=2,
        user_id=7,
        parent_id=None,
        audio_path=None,
        frames_done=0,
        frames_total=16,
        preview_path=None,
        result_path=None,
        error=None,
        eta_seconds=None,
        cancel_requested=False,
        progress_post_id=None,
        result_post_id=None,
        worker=None,
        attempts=0,
        created_at=0.0,
        started_at=None,
        finished_at=None,
    )
    base.update(changes)
    return Job(**base)


# -- small pieces ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("done", "total", "width", "expected"),
    [(0, 10, 10, "░░░░░░░░░░ 0%"), (5, 10, 10, "█████░░░░░ 50%"), (10, 10, 10, "██████████ 100%"),
     (1, 3, 6, "██░░░░ 33%"), (3, 0, 4, "░░░░ 0%"), (12, 10, 4, "████ 100%")],
)  # fmt: skip
def test_progress_bar(done, total, width, expected):
    assert messages.progress_bar(done, total, width) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (4.2, "5 s"), (59, "59 s"), (60, "1 min 00 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")],
)
def test_format_duration(seconds, expected):
    assert messages.format_duration(seconds) == expected


def test_format_bytes():
    assert messages.format_bytes(10 * 1024 * 1024) == "10 MiB"
    assert messages.format_bytes(1536) == "1.5 KiB"
    assert messages.format_bytes(100) == "100 B"


def test_quote_escapes_markdown_and_clips():
    assert messages.quote("**bold** _x_") == r"> \*\*bold\*\* \_x\_"
    assert messages.quote("a\nb") == "> a b"  # one line: a newline would end the quote
    long = messages.quote("x" * 5000)
    assert len(long) <= messages.PROMPT_LIMIT + 2 and long.endswith("…")


def test_result_filename_carries_the_seed():
    assert messages.result_filename(make_job()) == "animabot-42-seed1234.mp4"
    parent = make_job(id=40, seed=99)
    mux = make_job(id=43, kind=JobKind.MUX, params=None, seed=None, parent_id=40)
    assert messages.result_filename(mux, parent) == "animabot-43-seed99-audio.mp4"
    assert messages.result_filename(mux) == "animabot-43-audio.mp4"


# -- progress and results -------------------------------------------------------------------------
def test_progress_text_queued_shows_position():
    text = messages.progress_text(make_job(), position=3)
    assert "Job 42" in text and "position 3 in the queue" in text and "a cat in a sunflower field" in text
    assert "seed 1234" in text


def test_progress_text_running_shows_bar_frame_and_eta():
    job = make_job(status=JobStatus.RUNNING, frames_done=4, eta_seconds=30.2)
    text = messages.progress_text(job)
    assert "frame 4/16" in text and "█████░░░░░░░░░░░░░░░ 25%" in text and "31 s" in text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": JobStatus.RUNNING}, "Starting"),
        ({"status": JobStatus.RUNNING, "frames_done": 16}, "Encoding"),
        ({"status": JobStatus.RUNNING, "cancel_requested": True}, "Cancelling"),
        ({"status": JobStatus.FAILED, "error": "The GPU ran out of memory."}, "Failed: The GPU ran out of memory."),
        ({"status": JobStatus.CANCELLED}, "Cancelled"),
        ({"kind": JobKind.REROLL, "parent_id": 40}, "re-roll of job 40"),
    ],
)
def test_progress_text_states(changes, expected):
    assert expected in messages.progress_text(make_job(**changes))


def test_texts_fit_discord_limit():
    job = make_job(params=RenderParams(prompt="y " * 3000, seed=1), error="e" * 3000, status=JobStatus.FAILED)
    for text in (messages.progress_text(job), messages.result_text(job), messages.upload_failed_text(job, "z" * 3000)):
        assert len(text) <= limits.CONTENT


def test_result_text_has_prompt_seed_settings_and_everyone_is_escaped_not_removed():
    job = make_job(status=JobStatus.DONE, params=RenderParams(prompt="@everyone look", seed=5, frames=3))
    text = messages.result_text(job)
    assert "@everyone look" in text and "seed 5" in text and "3 frames @ 8 fps" in text and "<@7>" in text


def test_queued_reply():
    assert "Queued job 42" in messages.queued_reply(make_job(), 2) and "position 2" in messages.queued_reply(
        make_job(), 2
    )
    mux = make_job(id=43, kind=JobKind.MUX, params=None, seed=None, parent_id=40)
    assert "audio to job 40" in messages.queued_reply(mux, 0)


def test_limits_text():
    text = messages.limits_text(GuildLimits(max_frames=12, allowed_channel_ids=(5, 6)))
    assert "Max frames: **12**" in text and "<#5>, <#6>" in text and "Upload limit: **10 MiB**" in text


def test_queue_text_orders_and_marks_the_caller():
    running = make_job(id=1, status=JobStatus.RUNNING, frames_done=2, user_id=8)
    first = make_job(id=3, user_id=7)
    second = make_job(id=2, user_id=9)
    text = messages.queue_text([running, second, first], {3: 1, 2: 2}, user_id=7)
    lines = text.splitlines()
    assert lines[0].startswith("▶️ job 1 by <@8>") and "frame 2/16" in lines[0]
    assert lines[1].startswith("1. job 3 by you") and lines[2].startswith("2. job 2 by <@9>")
    assert lines[-1] == "Your next job is at position 1."
    assert "empty" in messages.queue_text([], {}, 7)


# -- permissions ----------------------------------------------------------------------------------
def test_can_cancel():
    job = make_job(user_id=7)
    assert can_cancel(job, 7, discord.Permissions.none())
    assert not can_cancel(job, 8, discord.Permissions.none())
    assert can_cancel(job, 8, discord.Permissions(manage_messages=True))
    assert can_cancel(job, 8, discord.Permissions(administrator=True))


def test_can_manage_limits():
    assert not can_manage_limits(discord.Permissions(manage_messages=True))
    assert can_manage_limits(discord.Permissions(manage_guild=True))
    assert can_manage_limits(discord.Permissions(administrator=True))


def test_can_reroll():
    assert can_reroll(make_job())
    assert not can_reroll(make_job(kind=JobKind.MUX, params=None))


def test_can_post_videos():
    post = discord.Permissions(view_channel=True, send_messages=True, attach_files=True)
    assert can_post_videos(post)
    assert not can_post_videos(discord.Permissions(view_channel=True, send_messages=True))
    assert not can_post_videos(post, in_thread=True)
    assert can_post_videos(post | discord.Permissions(send_messages_in_threads=True), in_thread=True)


POSTING = discord.Permissions(view_channel=True, send_messages=True, attach_files=True)


def run_checks(command, interaction) -> None:
    for check in command.checks:
        assert check(interaction) is True


@pytest.mark.parametrize("command", [Animate.animate, Mux.mux], ids=["animate", "mux"])
def test_commands_that_post_are_refused_with_a_sentence_where_the_bot_cannot_attach_files(command):
    no_files = discord.Permissions(view_channel=True, send_messages=True)
    interaction = SimpleNamespace(channel=None, app_permissions=no_files)
    with pytest.raises(checks.Refused) as refused:
        run_checks(command, interaction)
    assert str(refused.value) == (
        "I can't attach files in this channel — ask a server admin to give me the Attach Files permission there."
    )


@pytest.mark.parametrize("command", [Animate.animate, Mux.mux], ids=["animate", "mux"])
def test_commands_that_post_pass_their_checks_where_the_bot_can_post(command):
    run_checks(command, SimpleNamespace(channel=None, app_permissions=POSTING))


@pytest.mark.parametrize("command", [Admin.show, Admin.set_, Admin.reset], ids=["show", "set", "reset"])
def test_limits_commands_are_refused_without_manage_server(command):
    interaction = SimpleNamespace(permissions=discord.Permissions(manage_messages=True), app_permissions=POSTING)
    with pytest.raises(checks.Refused) as refused:
        run_checks(command, interaction)
    assert str(refused.value) == "Only members with the Manage Server permission can view or change the limits."


@pytest.mark.parametrize("command", [Admin.show, Admin.set_, Admin.reset], ids=["show", "set", "reset"])
def test_limits_commands_pass_their_checks_with_manage_server(command):
    run_checks(command, SimpleNamespace(permissions=discord.Permissions(manage_guild=True), app_permissions=POSTING))


# -- the job buttons ------------------------------------------------------------------------------
def test_result_view_sends_the_re_roll_button_as_before_then_info_and_remix():
    assert result_view(42).to_components() == [{"type": 1, "components": [
        {"type": 2, "style": 2, "disabled": False, "label": "Re-roll", "custom_id": "animabot:reroll:42",
         "emoji": {"id": None, "name": "🔄"}},
        {"type": 2, "style": 2, "disabled": False, "label": "Info", "custom_id": "animabot:info:42",
         "emoji": {"id": None, "name": "ℹ️"}},
        {"type": 2, "style": 2, "disabled": False, "label": "Remix", "custom_id": "animabot:remix:42",
         "emoji": {"id": None, "name": "🔀"}},
    ]}]  # fmt: skip


def test_progress_view_sends_the_cancel_button_as_before():
    assert progress_view(42).to_components() == [{"type": 1, "components": [
        {"type": 2, "style": 4, "disabled": False, "label": "Cancel", "custom_id": "animabot:cancel:42",
         "emoji": {"id": None, "name": "❌"}},
    ]}]  # fmt: skip


@pytest.mark.parametrize(("custom_id", "action"), [("animabot:reroll:42", "reroll"), ("animabot:cancel:42", "cancel")])
async def test_a_job_button_is_rebuilt_from_its_custom_id_alone(custom_id, action):
    match = JobButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    button = await JobButton.from_custom_id(None, None, match)
    assert (button.action, button.job_id, button.custom_id) == (action, 42, custom_id)


@pytest.mark.parametrize("custom_id", ["animabot:delete:42", "animabot:reroll:x", "tiny:reroll:42"])
def test_the_job_button_template_matches_only_its_own_ids(custom_id):
    assert JobButton.__discord_ui_compiled_template__.fullmatch(custom_id) is None


# -- /mux attachment checks -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "content_type", "extension"),
    [("song.mp3", "audio/mpeg", ".mp3"), ("voice.m4a", "video/mp4", ".m4a"), ("tone", "audio/wav", ".audio")],
)
def test_check_attachment_accepts_audio(filename, content_type, extension):
    assert check_attachment(filename, content_type, 1000) == extension


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "message"),
    [
        ("notes.txt", "text/plain; charset=utf-8", 10, "not audio"),
        ("song.mp3.exe", "application/octet-stream", 10, "not audio"),
        ("big.wav", "audio/wav", MAX_AUDIO_BYTES + 1, "at most 25 MiB"),
    ],
)
def test_check_attachment_refuses(filename, content_type, size, message):
    with pytest.raises(UserError, match=message):
        check_attachment(filename, content_type, size)


@pytest.fixture
async def cdn():
    """A loopback CDN: ``/tone.wav`` streams more than the cap (no Content-Length), ``/small.wav`` is small."""

    async def lying(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: chunked, as a CDN might send
        await response.prepare(request)
        for _ in range(MAX_AUDIO_BYTES // 2**20 + 2):
            await response.write(bytes(2**20))
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"RIFF" * 10)

    app = web.Application()
    app.router.add_get("/tone.wav", lying)
    app.router.add_get("/small.wav", small)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def mux():
    """The /mux cog on a stand-in bot that has only what downloads use: its HTTP session."""
    async with aiohttp.ClientSession() as session:  # the bot's one session, opened in its setup_hook
        yield Mux(SimpleNamespace(session=session))


async def test_the_audio_download_stops_at_the_cap_whatever_size_was_declared(cdn, mux, tmp_path):
    with pytest.raises(UserError, match="larger than 25 MiB"):
        await mux._download(SimpleNamespace(id=1, url=f"{cdn}/tone.wav"), tmp_path / "big.wav")
    assert not (tmp_path / "big.wav").exists()


async def test_a_download_the_cdn_refuses_asks_to_attach_it_again(cdn, mux, tmp_path):
    with pytest.raises(UserError, match="attach it again"):
        await mux._download(SimpleNamespace(id=2, url=f"{cdn}/gone.wav"), tmp_path / "gone.wav")
    assert not (tmp_path / "gone.wav").exists()


async def test_a_small_download_is_saved_as_sent(cdn, mux, tmp_path):
    await mux._download(SimpleNamespace(id=3, url=f"{cdn}/small.wav"), tmp_path / "small.wav")
    assert (tmp_path / "small.wav").read_bytes() == b"RIFF" * 10


def test_upload_path_ignores_the_users_file_name(tmp_path):
    assert upload_path(tmp_path, 99, ".wav") == tmp_path / "99.wav"
    assert upload_path(tmp_path, 99, "/../../x") == tmp_path / "99.audio"


# -- watcher helpers ------------------------------------------------------------------------------
def test_read_preview(tmp_path):
    good = tmp_path / "p.jpg"
    good.write_bytes(b"\xff\xd8 data \xff\xd9")
    half = tmp_path / "half.jpg"
    half.write_bytes(b"\xff\xd8 data")
    assert read_preview(str(good)) == b"\xff\xd8 data \xff\xd9"
    assert read_preview(str(half)) is None
    assert read_preview(str(tmp_path / "missing.jpg")) is None
    assert read_preview(None) is None


class _Response:
    def __init__(self, status):
        self.status = status
        self.reason = "x"


def test_upload_too_large():
    assert upload_too_large(discord.HTTPException(_Response(413), {"message": "too big", "code": 40005}))
    assert upload_too_large(discord.HTTPException(_Response(400), {"message": "too big", "code": 40005}))
    assert not upload_too_large(discord.HTTPException(_Response(400), {"message": "bad", "code": 50035}))

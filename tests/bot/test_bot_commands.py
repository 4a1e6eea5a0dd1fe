"""End to end, one behaviour per test: /limits (admins only), limits refusing a request, /mux,
/queue, /cancel and the apology for an unexpected error (in a command or behind a button)."""

from __future__ import annotations

import logging

import pytest
from support.botharness import command, job_id_in, progress_of
from support.media import write_wav
from support.waiting import wait_job, wait_result

from bot.delivery import progress, results
from bot.guild_limits import GuildLimits, get_limits
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import StoreUnavailable
from engine.video.read import probe


# -- /limits --------------------------------------------------------------------------------------
async def test_limits_is_hidden_from_members(fake, world, bot):
    with pytest.raises(PermissionError):  # the command's default permissions
        await fake.slash("limits set", {"max_frames": 4}, user_id=world.member_id, channel_id=world.channel_id)


async def test_limits_refuses_a_member_at_run_time_should_a_server_show_it_to_them(fake, world, bot):
    refused = await command(fake, "limits set", {"max_frames": 4}, user_id=world.member_id,
                            channel_id=world.channel_id, check_permissions=False)  # fmt: skip
    assert refused.content == "Only members with the Manage Server permission can view or change the limits."
    assert (await get_limits(bot.bot.store, world.guild_id, defaults=bot.bot.config.limits)).max_frames == 12


async def test_an_admins_limits_change_is_applied_and_stored(fake, world, bot):
    answer = await command(fake, "limits set", {"max_frames": 4, "daily_quota": 7, "cooldown_seconds": 0},
                           user_id=world.admin_id, channel_id=world.channel_id)  # fmt: skip
    assert "Limits updated" in answer.content and "Max frames: **4**" in answer.content
    limits = await get_limits(bot.bot.store, world.guild_id, defaults=bot.bot.config.limits)
    assert (limits.max_frames, limits.daily_quota) == (4, 7)
    shown = await command(fake, "limits show", user_id=world.admin_id, channel_id=world.channel_id)
    assert "Renders per user per UTC day: **7**" in shown.content


async def test_a_request_over_a_limit_gets_the_reason_privately_and_queues_nothing(fake, world, bot):
    store = bot.bot.store
    await command(fake, "limits set", {"max_frames": 4}, user_id=world.admin_id, channel_id=world.channel_id)
    over = await command(fake, "animate", {"prompt": "a cat", "frames": 6}, user_id=world.member_id,
                         channel_id=world.channel_id)  # fmt: skip
    assert over.content == "This server allows at most 4 frames; you asked for 6."
    assert await store.active_jobs() == [] and await store.get(1) is None


async def test_an_invalid_request_gets_the_user_errors_text_as_it_is(fake, world, bot):
    invalid = await command(fake, "animate", {"prompt": "0: a cat | 0: a dog"}, user_id=world.member_id,
                            channel_id=world.channel_id)  # fmt: skip
    assert "increasing frame order" in invalid.content


async def test_renders_can_be_kept_to_some_channels(fake, world, bot):
    channel = world.channel_id
    allowed = await command(fake, "limits set", {"channel": channel}, user_id=world.admin_id, channel_id=channel)
    assert f"Channels: **<#{channel}>**" in allowed.content
    elsewhere = fake.add_channel(world.guild_id, "random")
    refused = await command(fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=elsewhere)
    assert refused.content == f"Renders are not allowed in this channel; use <#{channel}>."


async def test_limits_reset_puts_the_defaults_back(fake, world, bot):
    await command(fake, "limits set", {"max_frames": 4}, user_id=world.admin_id, channel_id=world.channel_id)
    await command(fake, "limits reset", user_id=world.admin_id, channel_id=world.channel_id)
    assert await get_limits(bot.bot.store, world.guild_id, defaults=bot.bot.config.limits) == GuildLimits.from_config(
        bot.bot.config.limits
    )


# -- /mux -----------------------------------------------------------------------------------------
async def mux(fake, world, filename: str, data: bytes, *content_type: str):
    return await command(fake, "mux", user_id=world.member_id, channel_id=world.channel_id,
                         attachments={"audio": (filename, data, *content_type)})  # fmt: skip


async def finished_video(fake, world) -> int:
    """The member's first /animate job, once its video is posted."""
    answer = await command(fake, "animate", {"prompt": "a drum"}, user_id=world.member_id, channel_id=world.channel_id)
    job_id = job_id_in(answer.content)
    await wait_result(fake, world.channel_id, job_id)
    return job_id


async def test_mux_without_a_finished_video_says_to_make_one_first(fake, world, bot, tmp_path):
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes()
    nothing = await mux(fake, world, "tone.wav", wav)
    assert nothing.content == "You have no finished video here yet; make one with /animate first."


async def test_mux_explains_a_file_that_is_not_audio(fake, world, bot):
    text = await mux(fake, world, "notes.txt", b"hello", "text/plain")
    assert text.content == "That file (text/plain) is not audio; attach an MP3, WAV, OGG, FLAC or M4A file."


async def test_mux_refuses_an_oversize_file_before_downloading_it(fake, world, bot):
    downloads = len(fake.requests("GET", r"^/attachments/"))
    huge = await mux(fake, world, "huge.wav", bytes(26 * 2**20), "audio/wav")
    assert huge.content == "That file is 26 MiB; audio for /mux can be at most 25 MiB."
    assert len(fake.requests("GET", r"^/attachments/")) == downloads


async def test_mux_explains_a_file_dressed_up_as_audio_and_removes_it(fake, world, bot):
    await finished_video(fake, world)
    fake_wav = await mux(fake, world, "song.wav", b"not really audio" * 50, "audio/wav")
    assert "not an audio file that can be decoded" in fake_wav.content
    assert not list((bot.bot.config.data_dir / "uploads").iterdir())


async def test_mux_refuses_audio_longer_than_ten_minutes(fake, world, bot, tmp_path):
    await finished_video(fake, world)
    too_long = write_wav(tmp_path / "long.wav", seconds=601, rate=1000).read_bytes()
    long_answer = await mux(fake, world, "long.wav", too_long)
    assert long_answer.content.startswith("That audio is 10 min 01 s long; /mux takes at most 10 min 00 s")


async def test_mux_puts_a_wav_on_the_latest_video(fake, world, bot, tmp_path):
    job_id = await finished_video(fake, world)
    answer = await mux(fake, world, "tone.wav", write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes())
    mux_id = job_id_in(answer.content)
    assert f"adding your audio to job {job_id}" in answer.content
    result = await wait_result(fake, world.channel_id, mux_id)
    mux_job = await bot.bot.store.get(mux_id)
    assert (mux_job.kind, mux_job.parent_id, mux_job.status) == (JobKind.MUX, job_id, JobStatus.DONE)
    parent = await bot.bot.store.get(job_id)
    [video] = result.attachments
    assert video.filename == f"animabot-{mux_id}-seed{parent.seed}-audio.mp4"
    uploaded = tmp_path / video.filename
    uploaded.write_bytes(video.data)
    info = probe(uploaded)
    assert info.has_audio and info.frames == 2


async def test_a_used_mux_upload_is_removed(fake, world, bot, tmp_path):
    await finished_video(fake, world)
    answer = await mux(fake, world, "tone.wav", write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes())
    await wait_result(fake, world.channel_id, job_id_in(answer.content))
    uploads = bot.bot.config.data_dir / "uploads"
    await fake.wait_for(lambda: not list(uploads.iterdir()), 5, "the used upload to be removed")


# -- /queue and /cancel ---------------------------------------------------------------------------
LONG = {"prompt": "a long journey", "frames": 12, "size": "square"}


async def running_and_queued(fake, world, bot) -> tuple[int, int]:
    """The member's job, running; then the admin's, queued behind it (another size: a running batch
    takes in jobs of its own size at its next round, so one of the same size would start at once)."""
    answer = await command(fake, "animate", LONG, user_id=world.member_id, channel_id=world.channel_id)
    first = job_id_in(answer.content)
    await wait_job(bot, first, lambda j: j.status is JobStatus.RUNNING)
    other_size = {**LONG, "size": "portrait"}
    second_answer = await command(fake, "animate", other_size, user_id=world.admin_id, channel_id=world.channel_id)
    assert "position 1 in the queue" in second_answer.content
    return first, job_id_in(second_answer.content)


async def test_queue_when_empty(fake, world, bot):
    empty = await command(fake, "queue", user_id=world.member_id, channel_id=world.channel_id)
    assert empty.content.startswith("The queue is empty")


async def test_queue_lists_the_running_and_the_waiting_jobs(fake, world, bot):
    first, second = await running_and_queued(fake, world, bot)
    listing = await command(fake, "queue", user_id=world.admin_id, channel_id=world.channel_id)
    assert f"job {first} by <@{world.member_id}>" in listing.content and f"1. job {second} by you" in listing.content


async def test_a_member_may_not_cancel_someone_elses_job(fake, world, bot):
    _, second = await running_and_queued(fake, world, bot)
    no = await command(fake, "cancel", {"job": second}, user_id=world.member_id, channel_id=world.channel_id)
    assert no.content.startswith(f"Only the person who asked for job {second}")


async def test_the_requester_may_cancel_a_queued_job_and_its_progress_shows_it(fake, world, bot):
    _, second = await running_and_queued(fake, world, bot)
    yes = await command(fake, "cancel", {"job": second}, user_id=world.admin_id, channel_id=world.channel_id)
    assert yes.content == f"Job {second} is cancelled."
    second_progress = await fake.wait_for(lambda: progress_of(fake, world.channel_id, second), 5)
    await fake.wait_for(lambda: "Cancelled" in second_progress.content, 10)


async def test_the_cancel_button_cancels_a_running_job(fake, world, bot):
    channel, member = world.channel_id, world.member_id
    first = job_id_in((await command(fake, "animate", LONG, user_id=member, channel_id=channel)).content)
    await wait_job(bot, first, lambda j: j.status is JobStatus.RUNNING)
    progress = await fake.wait_for(lambda: progress_of(fake, channel, first), 5)
    click = await fake.click(progress.id, f"animabot:cancel:{first}", user_id=member)
    [answer] = await click.wait_followups(1, 10)
    assert answer.ephemeral and answer.content in (f"Cancelling job {first}…", f"Job {first} is cancelled.")
    job = await wait_job(bot, first, lambda j: j.status.finished and j.result_post_id is not None)
    assert job.status is JobStatus.CANCELLED and job.frames_done < 12
    await fake.wait_for(lambda: "Cancelled" in progress.content and progress.components == [], 10)
    assert await bot.bot.store.active_jobs() == []


async def test_cancel_with_nothing_to_cancel(fake, world, bot):
    nothing = await command(fake, "cancel", user_id=world.member_id, channel_id=world.channel_id)
    assert nothing.content == "You have no queued or running job here."


# -- unexpected errors ----------------------------------------------------------------------------
async def test_an_unexpected_error_is_logged_with_a_reference_and_the_user_gets_an_apology(fake, world, bot,
                                                                                          monkeypatch, caplog):  # fmt: skip
    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(bot.bot.store, "usage", broken)
    with caplog.at_level(logging.ERROR, logger="bot.answers"):
        answer = await command(
            fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id
        )
    [interaction] = [i for i in fake.interactions if i.name == "animate"]
    assert answer.content.startswith("Sorry, something went wrong") and str(interaction.id) in answer.content
    assert "database on fire" not in answer.content
    [record] = [r for r in caplog.records if "/animate failed" in r.getMessage()]
    assert str(interaction.id) in record.getMessage() and record.exc_info[1].args == ("database on fire",)


async def test_an_unexpected_error_behind_a_button_is_answered_as_one_in_a_command(fake, world, bot,
                                                                                   monkeypatch, caplog):  # fmt: skip
    channel, member = world.channel_id, world.member_id
    job_id = job_id_in((await command(fake, "animate", LONG, user_id=member, channel_id=channel)).content)
    progress = await fake.wait_for(lambda: progress_of(fake, channel, job_id), 10)

    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(bot.bot.actions, "cancel_or_delete", broken)
    with caplog.at_level(logging.ERROR, logger="bot.answers"):
        click = await fake.click(progress.id, f"animabot:cancel:{job_id}", user_id=member)
        [answer] = await click.wait_followups(1, 10)
    assert answer.ephemeral and answer.content.startswith("Sorry, something went wrong")
    assert f"reference {job_id}" in answer.content and "database on fire" not in answer.content
    [record] = [r for r in caplog.records if "on_job_cancel failed" in r.getMessage()]
    assert f"job {job_id}" in record.getMessage() and record.exc_info[1].args == ("database on fire",)


async def test_a_delivery_bug_is_logged_with_the_job_id_and_the_channel_gets_an_apology(fake, world, bot,
                                                                                       monkeypatch, caplog):  # fmt: skip
    async def broken(source, limit):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(results, "fit", broken)
    with caplog.at_level(logging.ERROR, logger="bot.delivery.progress"):
        answer = await command(
            fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id
        )
        job_id = job_id_in(answer.content)
        notice = await fake.wait_for(
            lambda: next((m for m in fake.bot_messages(world.channel_id) if "Sorry" in m.content), None), 30
        )
    assert f"reference {job_id}" in notice.content and "disk on fire" not in notice.content
    assert any(f"job {job_id}: progress or delivery failed" in r.getMessage() for r in caplog.records)


async def test_a_store_outage_while_delivering_is_waited_out_and_the_video_is_posted_once(fake, world, bot,
                                                                                           monkeypatch):  # fmt: skip
    store, real, failed = bot.bot.store, bot.bot.store.set_posts, []

    async def down_once(job_id, **posts):
        if "result_post_id" in posts and not failed:
            failed.append(job_id)
            raise StoreUnavailable()
        return await real(job_id, **posts)

    monkeypatch.setattr(store, "set_posts", down_once)
    monkeypatch.setattr(progress, "RETRY_DELAYS", (0.2, 0.2, 0.2))
    answer = await command(fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id)
    job_id = job_id_in(answer.content)
    done = await wait_job(bot, job_id, lambda job: job.result_post_id is not None)
    # the videos posted (not the progress message, which may still show its last preview frame)
    posts = [m for m in fake.bot_messages(world.channel_id) if any(a.filename.endswith(".mp4") for a in m.attachments)]
    assert failed == [job_id] and [m.id for m in posts] == [done.result_post_id]
    assert not any("Sorry" in m.content for m in fake.bot_messages(world.channel_id))


async def test_limits_show_displays_the_content_policy(fake, world, bot):
    shown = await command(fake, "limits show", user_id=world.admin_id, channel_id=world.channel_id)
    assert "Content policy: **block**" in shown.content and "frames are not checked" in shown.content
    changed = await command(fake, "limits set", {"safety": "off", "banned_words": "storm"}, user_id=world.admin_id,
                            channel_id=world.channel_id)  # fmt: skip
    assert "Content policy: **off**" in changed.content and "this server's responsibility" in changed.content
    assert "Banned words: **||storm||**" in changed.content

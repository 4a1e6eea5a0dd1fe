"""End to end: /animate through the real discord.py client, `animabot run`'s start-up and test-tiny.

One render (the module's ``rendered`` fixture) is watched once; each test asserts one behaviour of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from support.botharness import command, job_id_in, make_config, progress_of, start
from support.fakediscord import FakeDiscord, MessageRecord, World, fake_discord
from support.waiting import wait_job, wait_result

from bot.cli.run import Running
from engine.store.jobs import Job, JobKind, JobStatus
from engine.video.read import probe

pytestmark = pytest.mark.asyncio(loop_scope="module")

NO_PINGS = {"parse": []}
PROMPT = "@everyone a cat in a sunflower field"


@dataclass
class Rendered:
    fake: FakeDiscord
    world: World
    running: Running
    answer: MessageRecord  # the private answer to /animate
    job: Job  # as stored once delivered
    result: MessageRecord  # the message with the video
    progress: MessageRecord | None  # the progress message


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rendered(tmp_path_factory):
    """/animate of 12 frames at 512×512, watched until its progress message shows it done."""
    async with fake_discord() as fake:
        world = fake.default_world()
        running = await start(make_config(tmp_path_factory.mktemp("animate") / "data", fake, world))
        try:
            options = {"prompt": PROMPT, "frames": 12, "steps": 4, "size": "square", "seed": 1234}
            answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
            job_id = job_id_in(answer.content)
            result = await wait_result(fake, world.channel_id, job_id)
            job = await wait_job(running, job_id, lambda j: j.result_post_id is not None)
            progress = progress_of(fake, world.channel_id, job_id)
            if progress is not None:  # the final edit comes after delivery (reactions included)
                await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
            yield Rendered(fake, world, running, answer, job, result, progress)
        finally:
            await running.stop()
        assert fake.errors == []


async def test_commands_are_synced_to_the_configured_guild_not_globally(rendered):
    fake, world = rendered.fake, rendered.world
    assert [s.guild_id for s in fake.sync_calls] == [world.guild_id]
    assert {"animate", "mux", "queue", "cancel", "limits"} <= {c["name"] for c in fake.synced_commands(world.guild_id)}


async def test_animate_is_answered_with_the_job_id_and_queue_position(rendered):
    content = rendered.answer.content
    assert "position 1 in the queue" in content or "starting now" in content


async def test_the_job_is_stored_done_with_the_seed_asked_for(rendered):
    job = rendered.job
    assert job.status is JobStatus.DONE and job.kind is JobKind.ANIMATE and job.seed == 1234
    assert job.result_post_id == rendered.result.id


async def test_the_posted_video_is_the_render_named_with_its_seed(rendered):
    job = rendered.job
    [video] = rendered.result.attachments
    assert video.filename == f"animabot-{job.id}-seed1234.mp4"
    info = probe(job.result_path)
    assert (info.frames, info.width, info.height) == (12, 512, 512)
    assert video.data == Path(job.result_path).read_bytes()


async def test_the_result_text_has_the_prompt_seed_and_settings(rendered):
    content = rendered.result.content
    assert PROMPT in content and "seed 1234" in content and "12 frames @ 8 fps" in content


async def test_the_result_has_reroll_and_cancel_reactions_and_reroll_info_remix_buttons(rendered):
    assert set(rendered.result.reactions) >= {"🔄", "❌"}
    assert rendered.result.custom_ids() == [
        f"animabot:{action}:{rendered.job.id}" for action in ("reroll", "info", "remix")
    ]


async def test_the_progress_message_is_posted_with_a_cancel_button_and_stored(rendered):
    assert rendered.progress is not None  # progress_of finds it by its first revision's Cancel button
    assert rendered.job.progress_post_id == rendered.progress.id


async def test_the_progress_message_shows_frame_k_of_n_and_a_preview(rendered):
    revisions = rendered.progress.revisions
    frames_shown = [r for r in revisions if "frame " in r.content and "/12" in r.content]
    assert frames_shown, [r.content for r in revisions]
    with_preview = [r for r in revisions if [a.filename for a in r.attachments] == ["preview.jpg"]]
    assert with_preview and with_preview[0].attachments[0].data.startswith(b"\xff\xd8")


async def test_the_progress_message_is_edited_at_most_once_per_3_s(rendered):
    revisions = rendered.progress.revisions
    gaps = [b.at - a.at for a, b in zip(revisions, revisions[1:])]
    assert all(gap >= 2.9 for gap in gaps), gaps


async def test_the_final_progress_edit_drops_the_buttons_and_the_preview(rendered):
    assert "Done" in rendered.progress.content
    assert rendered.progress.components == [] and rendered.progress.attachments == []


async def test_nothing_the_bot_wrote_could_ping_anyone(rendered):
    for message in rendered.fake.bot_messages(include_deleted=True):
        for revision in message.revisions:
            if revision.via.endswith("callback type 5"):  # the "thinking…" defer has no text to ping with
                continue
            assert revision.allowed_mentions == NO_PINGS, (message.content, revision.via)

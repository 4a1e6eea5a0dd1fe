"""End to end: /animate through the real discord.py client, `animabot run`'s start-up and test-tiny."""

from __future__ import annotations

from support.botharness import command, job_id_in, progress_of, wait_job, wait_result
from engine.queue.jobs import JobKind, JobStatus
from engine.video.read import probe

NO_PINGS = {"parse": []}


async def test_animate_shows_progress_then_posts_the_video_without_pinging(fake, world, bot):
    # 1. commands were synced to the configured guild, not globally
    assert [s.guild_id for s in fake.sync_calls] == [world.guild_id]
    assert {"animate", "mux", "queue", "cancel", "limits"} <= {c["name"] for c in fake.synced_commands(world.guild_id)}

    # 2. /animate is deferred at once and answered with the job id and queue position
    prompt = "@everyone a cat in a sunflower field"
    options = {"prompt": prompt, "frames": 12, "steps": 4, "size": "square", "seed": 1234}
    answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
    job_id = job_id_in(answer.content)
    assert "position 1 in the queue" in answer.content or "starting now" in answer.content

    # 3. the video arrives in the channel with prompt, seed and settings; seed in the file name
    result = await wait_result(fake, world.channel_id, job_id)
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    assert job.status is JobStatus.DONE and job.kind is JobKind.ANIMATE and job.seed == 1234
    assert job.result_post_id == result.id
    [video] = result.attachments
    assert video.filename == f"animabot-{job_id}-seed1234.mp4"
    info = probe(job.result_path)
    assert (info.frames, info.width, info.height) == (12, 512, 512)
    assert video.data == open(job.result_path, "rb").read()
    assert prompt in result.content and "seed 1234" in result.content and "12 frames @ 8 fps" in result.content
    await fake.wait_for(lambda: set(result.reactions) >= {"🔄", "❌"}, 5, "the bot's reactions")
    assert result.custom_ids() == [f"animabot:reroll:{job_id}"]

    # 4. the progress message: posted with a Cancel button, edited with frame k/N and a preview,
    #    never more than once per 3 s, and finally marked done without buttons
    progress = progress_of(fake, world.channel_id, job_id)
    assert progress is not None and job.progress_post_id == progress.id
    await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
    revisions = progress.revisions
    frames_shown = [r for r in revisions if "frame " in r.content and "/12" in r.content]
    assert frames_shown, [r.content for r in revisions]
    with_preview = [r for r in revisions if [a.filename for a in r.attachments] == ["preview.jpg"]]
    assert with_preview and with_preview[0].attachments[0].data.startswith(b"\xff\xd8")
    gaps = [b.at - a.at for a, b in zip(revisions, revisions[1:])]
    assert all(gap >= 2.9 for gap in gaps), gaps
    assert progress.components == [] and progress.attachments == []

    # 5. nothing the bot wrote could ping anyone (the "thinking…" defer has no text to ping with)
    for message in fake.bot_messages(include_deleted=True):
        for revision in message.revisions:
            if revision.via.endswith("callback type 5"):
                continue
            assert revision.allowed_mentions == NO_PINGS, (message.content, revision.via)

"""End to end across restarts: resumed jobs keep their progress message; reactions and buttons on
old results still work, because their state is in SQLite and the buttons are DynamicItems."""

from __future__ import annotations

from support.botharness import command, job_id_in, progress_of, start
from support.waiting import wait_job, wait_result

from bot.guild_limits import set_limits
from engine.store.jobs import JobKind, JobStatus
from engine.video.read import probe


async def test_resume_after_restart_then_reroll_by_reaction_and_button_after_another(fake, world, config):
    channel, member = world.channel_id, world.member_id

    # 1. a render is interrupted by a restart half way through ...
    running = await start(config)
    try:
        options = {"prompt": "a lighthouse in a storm", "frames": 10, "size": "square", "seed": 7}
        job_id = job_id_in((await command(fake, "animate", options, user_id=member, channel_id=channel)).content)
        await wait_job(running, job_id, lambda j: j.frames_done >= 2 and j.progress_post_id is not None)
    finally:
        await running.stop()
    progress = progress_of(fake, channel, job_id)
    edits_before = len(progress.revisions)

    # 2. ... and resumes after it: same progress message, edited on, and the video delivered
    running = await start(config)
    try:
        result = await wait_result(fake, channel, job_id)
        job = await wait_job(running, job_id, lambda j: j.result_post_id is not None)
        assert job.status is JobStatus.DONE and job.attempts == 2 and job.progress_post_id == progress.id
        assert probe(job.result_path).frames == 10
        await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
        assert len(progress.revisions) > edits_before
        assert (
            len([m for m in fake.bot_messages(channel) if m.attachments and m.attachments[0].filename.endswith(".mp4")])
            == 1
        )
    finally:
        await running.stop()

    # 3. after another restart, 🔄 on the old result re-rolls it with a new seed
    running = await start(config)
    try:
        await fake.react(channel, result.id, "🔄", user_id=member)
        reroll = await wait_job(running, job_id + 1, lambda j: j.status.finished and j.result_post_id is not None)
        assert (reroll.kind, reroll.parent_id, reroll.status) == (JobKind.REROLL, job_id, JobStatus.DONE)
        assert reroll.seed != 7 and reroll.params.prompt == "a lighthouse in a storm" and reroll.params.frames == 10
        reroll_result = await wait_result(fake, channel, reroll.id)
        assert reroll_result.attachments[0].filename == f"animabot-{reroll.id}-seed{reroll.seed}.mp4"
        assert "re-roll of job" in reroll_result.content

        # the Re-roll button on the first result works too; that job is cancelled while queued
        click = await fake.click(result.id, f"animabot:reroll:{job_id}", user_id=member)
        [answer] = await click.wait_followups(1, 10)
        button_job = job_id_in(answer.content)
        assert answer.ephemeral and (await running.bot.store.get(button_job)).parent_id == job_id
        cancelled = await command(fake, "cancel", {"job": button_job}, user_id=member, channel_id=channel)
        assert f"job {button_job}" in cancelled.content
        await wait_job(running, button_job, lambda j: j.status is JobStatus.CANCELLED and j.result_post_id)

        # ❌ from someone else without Manage Messages is refused, with a reason in the channel;
        # ❌ from the requester deletes the result
        await fake.react(channel, reroll_result.id, "❌", user_id=world.admin_id)
        await fake.wait_for(
            lambda: any("Only the person who asked" in m.content for m in fake.bot_messages(channel)), 5
        )
        assert not reroll_result.deleted
        await fake.react(channel, reroll_result.id, "❌", user_id=member)
        await fake.wait_for(lambda: reroll_result.deleted, 5, "the result to be deleted")

        # a re-roll is subject to the limits: over the daily quota, 🔄 is refused with the reason
        await set_limits(
            running.bot.store, world.guild_id, defaults=config.limits, daily_quota=3
        )  # the member has asked for 3 today
        await fake.unreact(channel, result.id, "🔄", user_id=member)
        await fake.react(channel, result.id, "🔄", user_id=member)
        await fake.wait_for(lambda: any("used your 3 renders" in m.content for m in fake.bot_messages(channel)), 5)
        assert await running.bot.store.get(button_job + 1) is None
        assert fake.errors == []
    finally:
        await running.stop()

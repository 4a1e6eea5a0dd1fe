"""A result is posted once, even when the bot stops between the upload and the record of it.

The record write fails once (as a locked or vanished database would make it), the bot is
stopped and started again on the same data folder: the restarted bot posts again with the same
nonce, the loopback Discord answers it with the message made the first time (as Discord does
with ``enforce_nonce``), and that message is recorded. The video is in the channel exactly once.
"""

from __future__ import annotations

import sqlite3

from support.botharness import command, job_id_in, start
from support.waiting import wait_job

from bot.delivery import results


async def test_a_restart_between_upload_and_record_leaves_the_video_in_the_channel_once(fake, world, config):
    running = await start(config)
    store = running.bot.store
    real_set_posts = store.set_posts
    failed: list[int] = []

    async def set_posts_failing_once(job_id, *, progress_post_id=None, result_post_id=None):
        if result_post_id is not None and not failed:
            failed.append(result_post_id)
            raise sqlite3.OperationalError("disk I/O error")
        await real_set_posts(job_id, progress_post_id=progress_post_id, result_post_id=result_post_id)

    store.set_posts = set_posts_failing_once
    try:
        answer = await command(fake, "animate", {"prompt": "a lantern"}, user_id=world.member_id,
                               channel_id=world.channel_id)  # fmt: skip
        job_id = job_id_in(answer.content)
        await fake.wait_for(lambda: failed, 90, "the upload whose record fails")
        assert (await store.get(job_id)).result_post_id is None
    finally:
        await running.stop()

    running = await start(config)  # same data folder: the job is done but not recorded as delivered
    try:
        job = await wait_job(running, job_id, lambda j: j.result_post_id is not None, timeout=30)
    finally:
        await running.stop()
    # the videos (not the progress message, which may still show its last preview frame)
    videos = [m for m in fake.bot_messages(world.channel_id) if any(a.filename.endswith(".mp4") for a in m.attachments)]
    assert [m.id for m in videos] == [job.result_post_id] == failed
    posts = [r for r in fake.requests("POST", rf"/channels/{world.channel_id}/messages$") if r.files]
    assert [r.json["nonce"] for r in posts] == [results.nonce(job)] * 2
    assert posts[1].note == "nonce seen: existing message"
    assert sorted(videos[0].reactions) == ["❌", "🔄"]  # added once it was recorded

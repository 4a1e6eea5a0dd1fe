"""The store query the bot added: ``undelivered``."""

from __future__ import annotations

from engine.queue.jobs import JobKind, JobStatus
from engine.render.params import RenderParams
from engine.queue.store import JobStore


async def test_undelivered_lists_finished_channel_jobs_until_their_message_is_recorded(tmp_path):
    store = await JobStore.open(tmp_path / "jobs.sqlite3")
    try:
        params = RenderParams(prompt="a cat").with_seed(1)
        done = await store.enqueue(JobKind.ANIMATE, params, user_id=1, guild_id=2, origin_id=3)
        failed = await store.enqueue(JobKind.ANIMATE, params, user_id=1, guild_id=2, origin_id=3)
        cli = await store.enqueue(JobKind.ANIMATE, params, user_id=1)  # no channel: nobody to tell
        waiting = await store.enqueue(JobKind.ANIMATE, params, user_id=1, guild_id=2, origin_id=3)
        for job in (done, failed, cli):
            await store.claim("w")
        await store.finish(failed.id, JobStatus.FAILED, error="boom", now=10.0)
        await store.finish(done.id, JobStatus.DONE, result_path="/x.mp4", now=20.0)
        await store.finish(cli.id, JobStatus.DONE, result_path="/y.mp4", now=30.0)

        assert [j.id for j in await store.undelivered()] == [failed.id, done.id]
        await store.set_posts(failed.id, progress_post_id=100, result_post_id=100)
        assert [j.id for j in await store.undelivered()] == [done.id]
        await store.set_posts(done.id, result_post_id=101)
        assert await store.undelivered() == []
        assert (await store.get(waiting.id)).status is JobStatus.QUEUED
    finally:
        await store.close()

"""The store's reads and guild settings: usage per UTC day, settings per guild, listings of jobs
and of undelivered results."""

from __future__ import annotations

from support.store_jobs import T0, params, render

from engine.store.jobs import JobKind, JobStatus, Usage
from engine.store.store import JobStore

MIDNIGHT = 19_800 * 86400.0  # some 00:00 UTC


async def test_usage_counts_renders_per_utc_day(store):
    late = await render(store, 1, now=MIDNIGHT - 10)  # 23:59:50
    usage = await store.usage(1, 1, now=MIDNIGHT - 5)
    assert usage == Usage(renders_today=1, queued=1, last_request_at=MIDNIGHT - 10)
    assert (await store.usage(1, 1, now=MIDNIGHT + 10)).renders_today == 0  # 00:00:10 the next day

    await render(store, 1, now=MIDNIGHT + 10)
    await store.enqueue(JobKind.MUX, None, user_id=1, guild_id=1, now=MIDNIGHT + 11)  # a mux counts like a render
    await render(store, 1, guild=2, now=MIDNIGHT + 12)  # another guild
    await render(store, 2, now=MIDNIGHT + 13)  # another user
    assert await store.usage(1, 1, now=MIDNIGHT + 20) == Usage(renders_today=2, queued=3, last_request_at=MIDNIGHT + 11)

    assert (await store.claim("w", mux=False, now=MIDNIGHT + 30)).id == late.id
    await store.finish(late.id, JobStatus.DONE)
    usage = await store.usage(1, 1, now=MIDNIGHT + 40)
    assert (usage.renders_today, usage.queued) == (2, 2)  # finished jobs still count for the day
    assert await store.usage(None, 1) == Usage()
    assert await store.usage(3, 1) == Usage()


async def test_settings_are_a_json_object_per_guild_and_none_removes_a_key(store_location):
    path = store_location
    async with await JobStore.open(path) as store:
        assert await store.get_settings(1) == {}
        assert await store.update_settings(1, {"a": 1, "ids": [10, 11]}) == {"a": 1, "ids": [10, 11]}
        assert await store.update_settings(1, {"b": "x", "a": None, "gone": None}) == {"ids": [10, 11], "b": "x"}
        await store.update_settings(2, {"a": 2})
    async with await JobStore.open(path) as store:
        assert await store.get_settings(1) == {"ids": [10, 11], "b": "x"}
        await store.clear_settings(1)
        assert await store.get_settings(1) == {}
        assert await store.get_settings(2) == {"a": 2}  # other guilds untouched


# -- queries ----------------------------------------------------------------------------------------
async def test_active_latest_done_and_finished_before(store):
    old = await render(store, 1, now=T0)
    reroll = await store.enqueue(JobKind.REROLL, params(seed=2), user_id=1, guild_id=1, parent_id=old.id, now=T0 + 1)
    other_guild = await render(store, 1, guild=2, now=T0 + 2)
    assert [job.id for job in await store.active_jobs()] == [old.id, reroll.id, other_guild.id]
    assert [job.id for job in await store.active_jobs(guild_id=1)] == [old.id, reroll.id]

    assert await store.latest_done(1) is None
    for _ in range(3):
        job = await store.claim("w")
        await store.finish(job.id, JobStatus.DONE, now=T0 + 10 + job.id)
    assert (await store.latest_done(1)).id == other_guild.id
    assert (await store.latest_done(1, guild_id=1)).id == reroll.id
    assert (await store.latest_done(1, guild_id=1, kinds=(JobKind.ANIMATE,))).id == old.id
    assert await store.latest_done(1, kinds=(JobKind.MUX,)) is None
    assert await store.active_jobs() == []

    assert [job.id for job in await store.finished_before(T0 + 10 + reroll.id + 0.5)] == [old.id, reroll.id]
    assert await store.finished_before(T0) == []


async def test_undelivered_lists_finished_jobs_with_an_origin_until_their_result_post_is_recorded(store):
    p = params()
    done = await store.enqueue(JobKind.ANIMATE, p, user_id=1, guild_id=2, origin_id=3)
    failed = await store.enqueue(JobKind.ANIMATE, p, user_id=1, guild_id=2, origin_id=3)
    cli = await store.enqueue(JobKind.ANIMATE, p, user_id=1)  # no origin: nobody to tell
    waiting = await store.enqueue(JobKind.ANIMATE, p, user_id=1, guild_id=2, origin_id=3)
    for _ in (done, failed, cli):
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

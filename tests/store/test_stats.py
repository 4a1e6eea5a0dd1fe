"""The store's figures for the ops view (``engine.store.stats``): queue depth by status and lane with
the oldest queued job's age, the median wait, workers with their heartbeat age and s/frame, and a
guild's usage today. A fixed clock throughout."""

from __future__ import annotations

from support.store_jobs import T0, render

from engine.store.jobs import JobKind, JobStatus
from engine.store.stats import GuildDay, WorkerSpeed


async def test_queue_counts_by_status_and_lane_and_the_oldest_queued_age(store):
    empty = await store.queue_counts(now=T0)
    assert set(empty.jobs.values()) == {0} and empty.oldest_queued_seconds == 0.0
    first = await render(store, 1, now=T0)
    await render(store, 2, now=T0 + 5)
    await store.enqueue(JobKind.MUX, None, user_id=1, guild_id=1, now=T0 + 6)
    assert (await store.claim("w1", mux=False, now=T0 + 8)).id == first.id
    counts = await store.queue_counts(now=T0 + 20)
    assert counts.jobs == {
        ("queued", "render"): 1,
        ("queued", "mux"): 1,
        ("running", "render"): 1,
        ("running", "mux"): 0,
    }
    assert counts.oldest_queued_seconds == 15.0  # the second render, queued at T0 + 5


async def test_median_wait_workers_speed_and_a_guilds_day(store):
    jobs = [await render(store, user, now=T0 + user, frames=4) for user in (1, 2, 3)]
    await store.heartbeat("w1", now=T0)
    for job, started in zip(jobs, (T0 + 10, T0 + 20, T0 + 40)):
        assert (await store.claim("w1", mux=False, now=started)).id == job.id
        await store.finish(job.id, JobStatus.DONE, now=started + 8)  # 4 frames in 8 s: 2 s/frame
    await store.heartbeat("w2", now=T0 + 50)
    await store.heartbeat("gone", now=T0 - 7200)
    # waits: 9, 18 and 37 s (each claimed after its request at T0 + user)
    assert await store.median_wait(now=T0 + 60) == 18.0
    assert await store.median_wait(window=15, now=T0 + 60) is None  # none started in the last 15 s
    assert await store.workers(now=T0 + 60) == [WorkerSpeed("w2", 10.0, None), WorkerSpeed("w1", 60.0, 2.0)]
    today = await store.guild_today(1, now=T0 + 60)
    assert today == GuildDay(renders=3, frames=12, members=3)
    assert await store.guild_today(2, now=T0 + 60) == GuildDay(0, 0, 0)

"""Jobs left running by a restarted, dead or silent worker go back to the queue, or fail after too many attempts."""

from __future__ import annotations

from support.store_jobs import T0, render

from engine.store.jobs import JobStatus


async def test_requeue_running(store):
    a, b, c = [await render(store, user) for user in (1, 2, 3)]
    for worker in ("w1", "w1", "w2"):
        await store.claim(worker)
    await store.update_progress(a.id, 5, preview_path="p.png")
    await store.request_cancel(b.id)
    assert await store.requeue_running(worker="w2") == [c.id]
    assert (await store.get(a.id)).status is JobStatus.RUNNING

    assert await store.requeue_running(now=T0 + 9) == [a.id]
    back = await store.get(a.id)
    assert (back.status, back.frames_done, back.worker, back.started_at, back.preview_path) == (
        JobStatus.QUEUED,
        5,
        None,
        None,
        "p.png",
    )
    gone = await store.get(b.id)  # cancel was requested before the process died
    assert (gone.status, gone.finished_at) == (JobStatus.CANCELLED, T0 + 9)
    again = [await store.claim("w3"), await store.claim("w3")]
    assert sorted(job.id for job in again) == [a.id, c.id]
    assert all(job.attempts == 2 for job in again)


async def test_requeue_spares_live_workers_and_takes_dead_or_silent_ones(store):
    jobs = [await render(store, user) for user in (1, 2, 3)]
    for worker in ("live", "silent", "dead"):
        await store.claim(worker, now=T0)
    await store.heartbeat("live", now=T0 + 100)
    await store.heartbeat("silent", now=T0 + 50)
    await store.heartbeat("dead", now=T0 + 100)
    requeued = await store.requeue_running(now=T0 + 100, stale_after=30, dead=["dead"])
    assert sorted(requeued) == [jobs[1].id, jobs[2].id]
    assert (await store.get(jobs[0].id)).status is JobStatus.RUNNING
    assert await store.running_workers() == ["live"]


async def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(store):
    job = await render(store, 1)
    for attempt in range(1, 4):
        claimed = await store.claim(f"w{attempt}")
        assert claimed.id == job.id and claimed.attempts == attempt
        requeued = await store.requeue_running(stale_after=30, dead=[f"w{attempt}"], max_attempts=3)
        assert requeued == ([job.id] if attempt < 3 else [])
    failed = await store.get(job.id)
    assert failed.status is JobStatus.FAILED and "stopped its worker 3 times" in failed.error
    assert await store.claim("w4") is None

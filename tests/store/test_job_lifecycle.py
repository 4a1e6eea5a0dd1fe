"""A job's life in the store: enqueued, claimed, its progress, finished or cancelled, and read back;
writes that survive the caller's cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest
from support.store_jobs import T0, params, render

from engine.request.params import RenderParams
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore


async def test_lifecycle_queued_running_done_read_back(store_location, caplog):
    caplog.set_level(logging.INFO, logger="engine.store")
    path = store_location
    async with await JobStore.open(path) as store:
        job = await store.enqueue(
            JobKind.ANIMATE, params(frames=12, seed=42), user_id=7, guild_id=1, origin_id=5, now=T0
        )
        assert (job.status, job.seed, job.frames_total, job.frames_done, job.attempts) == (
            JobStatus.QUEUED,
            42,
            12,
            0,
            0,
        )
        assert job.params == params(frames=12, seed=42) and job.created_at == T0

        running = await store.claim("w1", now=T0 + 1)
        assert running.id == job.id
        assert (running.status, running.worker, running.started_at, running.attempts) == (
            JobStatus.RUNNING,
            "w1",
            T0 + 1,
            1,
        )
        assert await store.claim("w1") is None

        await store.update_progress(job.id, 4, preview_path="p/0003.png", eta_seconds=9.5)
        await store.update_progress(job.id, 5)  # keeps the preview and ETA
        await store.set_posts(job.id, progress_post_id=1001)
        await store.set_posts(job.id, result_post_id=1002)
        done = await store.finish(job.id, JobStatus.DONE, result_path="out/1.mp4", now=T0 + 20)
        assert (done.status, done.finished_at, done.result_path, done.eta_seconds) == (
            JobStatus.DONE,
            T0 + 20,
            "out/1.mp4",
            None,
        )

    async with await JobStore.open(path) as store:  # read back from the file
        back = await store.get(job.id)
        assert back == done
        assert (back.frames_done, back.preview_path) == (12, "p/0003.png")  # done counts every frame
        assert (back.origin_id, back.progress_post_id, back.result_post_id) == (5, 1001, 1002)
        assert await store.find_by_post(1001) == back
        assert await store.find_by_post(1002) == back
        assert await store.find_by_post(999) is None
        assert await store.get(999) is None
    messages = [r.getMessage() for r in caplog.records]
    assert f"job {job.id} queued → running (worker w1, attempt 1)" in messages
    assert f"job {job.id} running → done" in messages


async def test_enqueue_checks_params_and_mux_stores_none(store):
    with pytest.raises(ValueError):
        await store.enqueue(JobKind.ANIMATE, RenderParams(prompt="x"), user_id=1)
    with pytest.raises(ValueError):
        await store.enqueue(JobKind.REROLL, None, user_id=1)
    mux = await store.enqueue(JobKind.MUX, None, user_id=1, parent_id=3, audio_path="a.ogg")
    assert (mux.params, mux.seed, mux.frames_total, mux.parent_id, mux.audio_path) == (None, None, 0, 3, "a.ogg")


async def test_finish_rejects_unfinished_status_and_keeps_first_final_status(store):
    job = await render(store, 1)
    with pytest.raises(ValueError):
        await store.finish(job.id, JobStatus.RUNNING)
    with pytest.raises(KeyError):
        await store.finish(999, JobStatus.DONE)
    await store.claim("w")
    failed = await store.finish(job.id, JobStatus.FAILED, error="boom")
    assert (failed.status, failed.error) == (JobStatus.FAILED, "boom")
    assert (await store.finish(job.id, JobStatus.DONE)).status is JobStatus.FAILED


async def test_finish_survives_cancelling_the_caller(store):
    job = await render(store, 1)
    await store.claim("w")
    task = asyncio.create_task(store.finish(job.id, JobStatus.DONE, result_path="r.mp4"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if (await store.get(job.id)).status is JobStatus.DONE:
            break
        await asyncio.sleep(0.01)
    assert (await store.get(job.id)).status is JobStatus.DONE


async def test_a_write_cancelled_midway_leaves_the_store_usable(store):
    task = asyncio.create_task(render(store, 1))
    await asyncio.sleep(0)  # the task now waits on its transaction
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await render(store, 2)
    # a cancelled write happened whole or not at all (SQLite runs the transaction in one call on its
    # thread, which a cancel does not stop; PostgreSQL rolls it back): never half
    active = await store.active_jobs()
    assert [j.user_id for j in active] in ([2], [1, 2]) and active[-1].id == job.id
    assert all(j.params is not None for j in active)


async def test_cancel_while_queued(store):
    job = await render(store, 1)
    cancelled = await store.request_cancel(job.id, now=T0 + 3)
    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, T0 + 3)
    assert await store.claim("w") is None
    assert await store.queue_positions([job.id]) == {job.id: 0}
    with pytest.raises(KeyError):
        await store.request_cancel(999)


async def test_cancel_while_running(store):
    job = await render(store, 1)
    await store.claim("w")
    flagged = await store.request_cancel(job.id)
    assert (flagged.status, flagged.cancel_requested) == (JobStatus.RUNNING, True)
    assert await store.claim("w") is None
    done = await store.finish(job.id, JobStatus.CANCELLED)
    assert done.status is JobStatus.CANCELLED
    assert await store.request_cancel(job.id) == done  # finished: unchanged
    assert await store.claim("w") is None


async def test_200_concurrent_enqueues(store):
    jobs = await asyncio.gather(*(render(store, i % 7, seed=i) for i in range(200)))
    assert len({job.id for job in jobs}) == 200
    assert len(await store.active_jobs()) == 200

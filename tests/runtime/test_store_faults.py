"""PostgreSQL faults: a killed connection is replaced without the caller noticing; an unreachable
database is a readable ``StoreUnavailable`` within 3 s, and a job that ends meanwhile is recorded
once it is back; a schema migrated by many at once, once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time

import pytest
from support.waiting import until

from engine.config import Config, EngineConfig
from engine.request.params import RenderParams
from engine.runtime import batcher
from engine.runtime.in_flight import describe_failure
from engine.runtime.worker import Runtime
from engine.store.db import StoreUnavailable
from engine.store.jobs import Job, JobKind, JobStatus
from engine.store.schema import SCHEMA_VERSION
from engine.store.store import JobStore
from engine.video.read import probe

PARAMS = RenderParams(prompt="a cat", frames=4, seed=1, width=64, height=64)
LONGER = dataclasses.replace(PARAMS, frames=6, steps=8)  # still rendering when the test cuts the database


@contextlib.contextmanager
def _outage(cluster, name: str):
    """The test's database refuses every connection (the open ones are cut) until the block ends."""
    cluster.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    cluster.terminate_connections(name)
    try:
        yield
    finally:
        cluster.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


@contextlib.asynccontextmanager
async def _ending_in_an_outage(cluster, name: str, runtime: Runtime, caplog):
    """A job (``LONGER``) renders on ``runtime``; after its first frame the database goes away, and the
    block runs, still in the outage, once the runtime has rendered the job and tried to record its end."""
    store = runtime.store
    job = await store.enqueue(JobKind.ANIMATE, LONGER, user_id=1, guild_id=1, origin_id=5)
    runtime.notify()
    await until(lambda: _rendering(store, job.id), 60, "the job's first frame")
    with _outage(cluster, name):  # the batch renders on through the outage, and the job ends in it
        await until(lambda: _logged(caplog, f"the job store is unreachable to mark job {job.id} done"),
                    90, "the runtime to try to record the job's end")  # fmt: skip
        yield job


def _config(tmp_path) -> Config:
    return Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"))


@pytest.fixture
async def pg(pg_cluster, tmp_path):
    url = pg_cluster.new_database()
    async with await JobStore.open(url, data_dir=tmp_path / "data") as store:
        yield pg_cluster, url.rpartition("/")[2], store


async def test_a_terminated_connection_is_replaced_and_the_call_succeeds(pg):
    cluster, name, store = pg
    job = await store.enqueue(JobKind.ANIMATE, PARAMS, user_id=1)
    assert cluster.terminate_connections(name) >= 1
    assert (await store.get(job.id)).id == job.id  # a read, retried on a fresh connection
    assert (await store.claim("w")).id == job.id  # a write too


async def test_an_unreachable_database_is_a_readable_error_within_3_s(pg):
    cluster, name, store = pg
    with _outage(cluster, name):
        for call in (store.enqueue(JobKind.ANIMATE, PARAMS, user_id=1), store.usage(1, 1), store.claim("w")):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="The queue is unavailable for the moment"):
                await call
            assert time.monotonic() - started < 3.0
    assert await store.usage(1, 1) is not None  # and back once it is reachable


async def test_stores_opening_a_new_database_at_once_migrate_it_once(pg_cluster):
    url = pg_cluster.new_database()
    stores = await asyncio.gather(*(JobStore.open(url) for _ in range(4)))
    try:
        name = url.rpartition("/")[2]
        assert pg_cluster.psql("SELECT version FROM animabot_schema", name) == str(SCHEMA_VERSION)
        columns = pg_cluster.psql(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_name = 'jobs'",
            name,
        )
        assert columns.split(",") == [f.name for f in dataclasses.fields(Job)]
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_job_that_ends_while_the_database_is_unreachable_is_recorded_once_it_is_back(pg, tmp_path, caplog):
    cluster, name, store = pg
    runtime = Runtime(_config(tmp_path), store)
    await runtime.start()
    try:
        async with _ending_in_an_outage(cluster, name, runtime, caplog) as job:
            pass  # the database is back: the end the runtime kept is recorded
        done = await until(lambda: _finished(store, job.id), 60, "the job to be recorded as ended")
        assert (done.status, done.frames_done) == (JobStatus.DONE, LONGER.frames), done.error
        assert probe(await store.blobs.fetch(done.result_path)).frames == LONGER.frames
    finally:
        await runtime.stop()


async def test_a_runtime_stopping_in_an_outage_stops_and_its_job_resumes_later(pg, tmp_path, caplog, monkeypatch):
    cluster, name, store = pg
    monkeypatch.setattr(batcher, "CLOSE_SECONDS", 1.0)
    config = _config(tmp_path)
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        async with _ending_in_an_outage(cluster, name, runtime, caplog) as job:
            await asyncio.wait_for(runtime.stop(), 60)  # it does not wait for the database
    except BaseException:
        await runtime.stop()
        raise
    await until(lambda: _status(store, job.id, JobStatus.RUNNING), 60, "the store to answer")  # nothing recorded
    assert await store.requeue_running(worker=runtime.worker) == [job.id]  # as its lease running out would
    again = Runtime(config, store)
    await again.start()
    try:
        again.notify()
        done = await until(lambda: _finished(store, job.id), 60, "the job to be resumed and done")
        assert done.status is JobStatus.DONE, done.error
        assert probe(await store.blobs.fetch(done.result_path)).frames == LONGER.frames
    finally:
        await again.stop()


async def test_a_claimed_job_whose_saved_frames_cannot_be_fetched_fails_with_a_reason(pg, tmp_path):
    cluster, name, store = pg
    job = await store.enqueue(JobKind.ANIMATE, PARAMS, user_id=1, guild_id=1, origin_id=5)
    first = await store.claim("gone:1")  # a worker elsewhere saved a frame, then died
    frame = tmp_path / "00000.png"
    frame.write_bytes(b"a saved frame")
    await store.update_progress(job.id, 1, token=first.lease_token, files={"jobs/1/frames/00000.png": frame})
    assert await store.requeue_running(worker="gone:1") == [job.id]
    jobs = tmp_path / "data" / "jobs"
    shutil.rmtree(jobs)  # the saving host's cached copy: this host has none
    jobs.write_bytes(b"")  # and its disk refuses the job's folder
    runtime = Runtime(_config(tmp_path), store)
    await runtime.start()
    try:
        runtime.notify()
        failed = await until(lambda: _finished(store, job.id), 60, "the job to end")  # not left running
        assert (failed.status, failed.error) == (JobStatus.FAILED, describe_failure(NotADirectoryError()))
        jobs.unlink()
        later = await store.enqueue(JobKind.ANIMATE, PARAMS, user_id=2, guild_id=1, origin_id=6)
        runtime.notify()
        assert (await until(lambda: _finished(store, later.id), 60, "the next job")).status is JobStatus.DONE
    finally:
        await runtime.stop()


async def _rendering(store, job_id):
    return (await store.get(job_id)).frames_done >= 1


async def _logged(caplog, text):
    return any(text in record.getMessage() for record in caplog.records)


async def _job(store, job_id):
    """The job, or None while the pool is still reconnecting after an outage."""
    try:
        return await store.get(job_id)
    except StoreUnavailable:
        return None


async def _finished(store, job_id):
    job = await _job(store, job_id)
    return job if job is not None and job.status.finished else None


async def _status(store, job_id, status):
    job = await _job(store, job_id)
    return job is not None and job.status is status

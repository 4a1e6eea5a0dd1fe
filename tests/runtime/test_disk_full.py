"""A full disk fails the job it stops and never leaves it running (issue 20, defect 6).

A frame, a blob, the video or the database that cannot be written fails the job with one sentence;
its partial files are removed, its member's queue slot is free, and the worker renders the next job
once there is space again. The full disks are real: the job store's SQLite database made full with
``PRAGMA max_page_count``, a write that raises ``ENOSPC`` (our own writer, ``engine.files.write_atomic``,
as the runtime holds it), and a 2 MiB tmpfs as the data folder (skipped only where mounting is refused).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import subprocess

import pytest
from support.media import write_wav
from support.waiting import until, wait_stored

from engine.config import Config, EngineConfig
from engine.errors import DISK_FULL
from engine.request.params import RenderParams
from engine.runtime import in_flight
from engine.runtime.worker import Runtime, job_dir
from engine.store import blobs
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore, StoreFull

SMALL = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)
GUILD, MEMBER = 5, 1


@contextlib.asynccontextmanager
async def serving(data_dir):
    """A runtime serving a SQLite store in ``data_dir``: (config, store, runtime)."""
    config = Config(data_dir=data_dir, engine=EngineConfig(model="test-tiny", device="cpu", compile=False))
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        yield config, store, runtime
    finally:
        await runtime.stop()
        await store.close()


async def render(store, runtime, params=SMALL):
    job = await store.enqueue(JobKind.ANIMATE, params, user_id=MEMBER, guild_id=GUILD, origin_id=6)
    runtime.notify()
    return job


async def gone(path):
    return not path.exists()


async def assert_failed_for_the_disk(config, store, job_id):
    failed = await wait_stored(store, job_id, lambda job: job.status.finished)
    assert (failed.status, failed.error) == (JobStatus.FAILED, DISK_FULL)
    await until(lambda: gone(job_dir(config, job_id)), 10, f"job {job_id}'s partial files to be removed")
    assert (await store.usage(GUILD, MEMBER)).queued == 0  # the member's queue slot is free


async def assert_renders(store, runtime):
    job = await render(store, runtime)
    done = await wait_stored(store, job.id, lambda job: job.status.finished)
    assert (done.status, done.frames_done) == (JobStatus.DONE, 3)


def no_space(path, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


# -- a write that finds the disk full --------------------------------------------------------------
async def test_a_frame_that_cannot_be_written_fails_the_job_and_the_worker_goes_on(tmp_path, monkeypatch):
    async with serving(tmp_path / "data") as (config, store, runtime):
        with monkeypatch.context() as patch:
            patch.setattr(in_flight, "write_atomic", no_space)  # the preview, written beside each frame
            job = await render(store, runtime)
            await assert_failed_for_the_disk(config, store, job.id)
        await assert_renders(store, runtime)  # space is back


async def test_a_blob_that_cannot_be_cached_fails_the_mux_job(pg_cluster, tmp_path, monkeypatch):
    """Hosts that share only the database cache blobs in their data folder: a mux job whose video
    cannot be cached there fails with the sentence, and the worker goes on."""
    config = Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu", compile=False))
    async with await JobStore.open(pg_cluster.new_database(), data_dir=config.data_dir) as store:
        runtime = Runtime(config, store)
        await runtime.start()
        try:
            video = await render(store, runtime)
            video = await wait_stored(store, video.id, lambda job: job.status is JobStatus.DONE)
            await store.blobs.save("uploads/tone.wav", write_wav(tmp_path / "tone.wav"))
            (await store.blobs.fetch(video.result_path)).unlink()  # cached by the host that rendered it
            with monkeypatch.context() as patch:
                patch.setattr(blobs, "write_atomic", no_space)
                mux = await store.enqueue(JobKind.MUX, None, user_id=MEMBER, guild_id=GUILD, parent_id=video.id,
                                          audio_path=store.blobs.ref("uploads/tone.wav"))  # fmt: skip
                runtime.notify()
                await assert_failed_for_the_disk(config, store, mux.id)
            await assert_renders(store, runtime)
        finally:
            await runtime.stop()


# -- the database is full --------------------------------------------------------------------------
FILLER = 999  # the user of the rows that fill the database


def fill_database(path) -> None:
    """Leave the database no room at all: no page may be added (``max_page_count``), and the jobs
    table's page is packed with rows of ``FILLER`` down to the last byte, so any job row that grows
    needs a page it cannot have ("database or disk is full")."""
    with contextlib.closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")

        def write(sql, args) -> bool:
            try:
                conn.execute(sql, args)
            except sqlite3.OperationalError as err:
                assert err.sqlite_errorname == "SQLITE_FULL", err
                return False
            return True

        insert = "INSERT INTO jobs (kind, status, user_id, audio_path, created_at) VALUES ('mux', 'cancelled', ?, ?, 0)"
        for size in (1000, 100, 10, 0):
            while write(insert, (FILLER, "x" * size)):
                pass
        grow = "UPDATE jobs SET audio_path = audio_path || 'x' WHERE id = (SELECT MAX(id) FROM jobs WHERE user_id = ?)"
        while write(grow, (FILLER,)):
            pass


def free_database(path) -> None:
    with contextlib.closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as conn:
        conn.execute("DELETE FROM jobs WHERE user_id = ?", (FILLER,))


async def test_a_full_database_fails_the_job_and_its_end_lands_once_there_is_room(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="engine.store.db")
    async with serving(tmp_path / "data") as (config, store, runtime):
        with contextlib.closing(sqlite3.connect(config.db_path, isolation_level=None)) as conn:
            conn.execute("VACUUM")  # no free pages: the database can only grow, and it may not
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        await store._db._conn.execute(f"PRAGMA max_page_count = {pages}")  # a pragma of each connection
        write_atomic = in_flight.write_atomic

        def full_after_the_frame(path, data):  # the first frame is on disk; its count meets a full database
            if not filled:
                fill_database(config.db_path)
                filled.append(path)
            return write_atomic(path, data)

        filled: list = []
        with monkeypatch.context() as patch:
            patch.setattr(in_flight, "write_atomic", full_after_the_frame)
            job = await render(store, runtime)

            async def refused():  # the job's end is tried, and waits for room
                return any(f"full to mark job {job.id} failed" in r.getMessage() for r in caplog.records)

            await until(refused, 60, f"job {job.id}'s end to meet the full database")
            assert (await store.get(job.id)).status is JobStatus.RUNNING
            with pytest.raises(StoreFull, match="^The host's disk is full; tell the host.$"):  # what a member reads
                await store.enqueue(JobKind.ANIMATE, SMALL, user_id=MEMBER, guild_id=GUILD)
            free_database(config.db_path)
            await store._db._conn.execute("PRAGMA max_page_count = 1073741823")
        await assert_failed_for_the_disk(config, store, job.id)
        await assert_renders(store, runtime)


# -- a job no worker serves -----------------------------------------------------------------------
T0 = 1_700_000_000.0


@pytest.fixture
async def store(store_location, tmp_path):
    async with await JobStore.open(store_location, data_dir=tmp_path / "data", lease_seconds=30) as store:
        yield store


async def test_the_heartbeat_renews_only_the_jobs_its_worker_still_serves(store):
    served, forgotten = [
        await store.enqueue(JobKind.ANIMATE, SMALL, user_id=user, guild_id=GUILD, now=T0) for user in (1, 2)
    ]
    await store.claim("w", now=T0)
    await store.claim("w", now=T0)
    await store.heartbeat("w", now=T0 + 25, jobs=[served.id])
    assert (await store.get(served.id)).lease_expires_at == T0 + 55
    assert (await store.get(forgotten.id)).lease_expires_at == T0 + 30  # it runs out: re-queued, or cancelled
    await store.heartbeat("w", now=T0 + 26, jobs=[])
    assert (await store.get(served.id)).lease_expires_at == T0 + 55


async def test_cancel_ends_a_running_job_that_no_worker_holds_at_once(store):
    job = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=MEMBER, guild_id=GUILD, now=T0)
    claimed = await store.claim("w", now=T0)
    held = await store.request_cancel(job.id, now=T0 + 10)  # its worker holds it: asked to stop
    assert (held.status, held.cancel_requested) == (JobStatus.RUNNING, True)
    stuck = await store.request_cancel(job.id, now=T0 + 31)  # its lease ran out: nobody will stop it
    assert stuck.status is JobStatus.CANCELLED
    assert (await store.usage(GUILD, MEMBER, now=T0 + 31)).queued == 0
    assert not await store.holds(job.id, claimed.lease_token)  # the worker, should it wake, writes nothing


# -- a real full disk ------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs; skipped where mounting is refused (not root, no CAP_SYS_ADMIN)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs was refused: {mounted.stderr.decode(errors='replace').strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_a_render_that_fills_a_real_disk_fails_and_the_next_renders_once_space_is_freed(small_disk):
    async with serving(small_disk) as (config, store, runtime):
        ballast = small_disk / "ballast"
        disk = os.statvfs(small_disk)
        ballast.write_bytes(bytes(disk.f_bavail * disk.f_frsize - 300 * 1024))  # 300 KiB left for the render
        big = RenderParams(prompt="a cat", frames=12, fps=8, steps=2, width=128, height=128, seed=1)
        job = await render(store, runtime, big)
        await assert_failed_for_the_disk(config, store, job.id)
        ballast.unlink()  # the host frees space
        await assert_renders(store, runtime)

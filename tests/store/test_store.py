"""The job store: schema, lifecycle, fair claiming, cancellation, concurrency, usage and settings."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3

import pytest

from engine.request.params import RenderParams
from engine.store.jobs import Job, JobKind, JobStatus, Usage
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION
from engine.store.store import JobStore

T0 = 1_700_000_000.0
MIDNIGHT = 19_800 * 86400.0  # some 00:00 UTC


def params(frames: int = 8, seed: int = 1, width: int = 512, height: int = 512) -> RenderParams:
    return RenderParams(prompt="a cat", frames=frames, seed=seed, width=width, height=height)


@pytest.fixture
async def store(store_location, tmp_path):
    """A store on each backend (``store_location`` is parametrised: SQLite, PostgreSQL)."""
    async with await JobStore.open(store_location, data_dir=tmp_path / "data") as store:
        yield store


async def execute(store: JobStore, sql: str, rows=((),)) -> None:
    """Run ``sql`` once per row of arguments on the store's own database (to set up a state)."""

    async def body(tx):
        for args in rows:
            await tx.execute(sql, args)

    await store._db.run(body)


async def render(store: JobStore, user: int, now: float = T0, guild: int | None = 1, **kw) -> Job:
    return await store.enqueue(JobKind.ANIMATE, params(**kw), user_id=user, guild_id=guild, origin_id=5, now=now)


# -- schema -----------------------------------------------------------------------------------------
async def test_columns_are_the_job_fields_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    for _ in range(2):
        store = await JobStore.open(path)
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns == [f.name for f in dataclasses.fields(Job)]


async def test_a_version_1_database_is_upgraded_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO jobs (kind, user_id, created_at, status, worker) VALUES ('mux', 7, 1.0, 'running', 'old')"
        )
    store = await JobStore.open(path)
    try:
        assert (await store.get(1)).user_id == 7
        # The old worker never sent a heartbeat: its job counts as orphaned.
        assert await store.requeue_running(stale_after=30) == [1]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_version_2_database_keeps_its_posts_and_limits_in_the_neutral_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0] + MIGRATIONS[1]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            """INSERT INTO jobs (kind, user_id, created_at, status, channel_id, progress_post_id, result_post_id)
               VALUES ('mux', 7, 1.0, 'done', 55, 1001, 1002)"""
        )
        db.execute(
            """INSERT INTO guild_limits (guild_id, max_frames, daily_quota, allowed_channel_ids, updated_at)
               VALUES (1, 24, 0, '[10, 11]', 5.0), (2, NULL, NULL, NULL, 6.0)"""
        )
    async with await JobStore.open(path) as store:
        job = await store.get(1)
        assert (job.origin_id, job.progress_post_id, job.result_post_id) == (55, 1001, 1002)
        assert await store.find_by_post(1002) == job
        assert await store.get_settings(1) == {"max_frames": 24, "daily_quota": 0, "allowed_channel_ids": [10, 11]}
        assert await store.get_settings(2) == {}
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        updated = db.execute("SELECT guild_id, updated_at FROM guild_settings ORDER BY guild_id").fetchall()
    assert "guild_limits" not in tables and "guild_settings" in tables
    assert {"jobs_by_progress_post", "jobs_by_result_post"} <= indexes
    assert not {"jobs_by_progress_message", "jobs_by_result_message"} & indexes
    assert updated == [(1, 5.0), (2, 6.0)]


# -- lifecycle --------------------------------------------------------------------------------------
async def test_lifecycle_queued_running_done_read_back(store_location, caplog):
    caplog.set_level(logging.INFO, logger="engine.queue")
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
    await asyncio.sleep(0)  # the task now waits on BEGIN IMMEDIATE
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await render(store, 2)
    assert [j.id for j in await store.active_jobs()] == [job.id]


# -- fair order -------------------------------------------------------------------------------------
async def test_claims_round_robin_across_users(store):
    A, B, C = 100, 200, 300
    for user, count in ((A, 5), (B, 2), (C, 1)):
        for _ in range(count):
            await render(store, user)
    queued = await store.active_jobs()
    predicted = await store.queue_positions(job.id for job in queued)

    claimed = []
    while (job := await store.claim("w", now=T0)) is not None:  # one clock reading: order by turn
        claimed.append(job)
    assert [job.user_id for job in claimed] == [A, B, C, A, B, A, A, A]
    by_user = {}
    for job in claimed:  # each user's jobs oldest first
        by_user.setdefault(job.user_id, []).append(job.id)
    assert all(ids == sorted(ids) for ids in by_user.values())
    # queue_positions predicted exactly this order: A's jobs are 1-5, B's 6-7, C's 8
    assert [job.id for job in claimed] == [1, 6, 8, 2, 7, 3, 4, 5]
    assert predicted == {1: 1, 2: 4, 3: 6, 4: 7, 5: 8, 6: 2, 7: 5, 8: 3}
    assert await store.queue_positions([claimed[0].id]) == {claimed[0].id: 0}  # not queued any more


async def test_a_newcomer_is_served_before_users_already_served(store):
    for _ in range(3):
        await render(store, 1)
    assert (await store.claim("w")).user_id == 1
    late = await render(store, 2)
    assert await store.queue_positions([late.id]) == {late.id: 1}
    assert (await store.claim("w")).id == late.id
    assert (await store.claim("w")).user_id == 1


FAIR_CASES = [  # (queued jobs 1..n as their users, turns: when each user was last served, the order claims take)
    ([9, 9, 8], {}, [1, 3, 2]),
    ([9, 9, 8], {8: 5, 9: 4}, [1, 3, 2]),
    ([9, 8], {9: 5, 8: 4}, [2, 1]),
    ([7, 7, 7, 8, 9, 8], {7: 3}, [4, 5, 1, 6, 2, 3]),  # never served first, by their oldest job
    ([1, 2, 3, 1, 2, 1], {1: 9, 2: 8, 3: 10}, [2, 1, 3, 5, 4, 6]),
    ([], {1: 1}, []),
]


@pytest.mark.parametrize("users, turns, expected", FAIR_CASES)
async def test_queue_positions_and_claims_follow_the_fair_order(store_location, users, turns, expected):
    async with await JobStore.open(store_location) as store:
        jobs = [await render(store, user) for user in users]
        assert [job.id for job in jobs] == list(range(1, len(users) + 1))
        # as if earlier claims had served these users
        await execute(store, "INSERT INTO claim_turns (user_id, lane, turn) VALUES (?, 'render', ?)", turns.items())
        positions = await store.queue_positions(job.id for job in jobs)
        assert sorted(positions, key=positions.get) == expected
        assert sorted(positions.values()) == list(range(1, len(users) + 1))
        claimed = []
        while (job := await store.claim("w")) is not None:
            claimed.append(job.id)
        assert claimed == expected


async def test_queue_positions_count_within_each_lane_and_skip_what_is_not_queued(store):
    r1, r2 = await render(store, 1), await render(store, 2)
    mux = await store.enqueue(JobKind.MUX, None, user_id=3)
    cancelled = await render(store, 4)
    await store.request_cancel(cancelled.id)
    assert await store.queue_positions([mux.id, r2.id, r1.id, cancelled.id, 999, r1.id]) == {
        mux.id: 1,
        r2.id: 2,
        r1.id: 1,
        cancelled.id: 0,
        999: 0,
    }
    assert await store.queue_positions([]) == {}


async def test_mux_is_claimable_apart_from_renders(store):
    r1 = await render(store, 1)
    await render(store, 1)
    mux = await store.enqueue(JobKind.MUX, None, user_id=2, parent_id=r1.id, audio_path="a.mp3")
    assert await store.claim("cpu", renders=False, mux=False) is None
    assert (await store.claim("cpu", renders=False)).id == mux.id
    assert await store.claim("cpu", renders=False) is None
    assert (await store.claim("gpu", mux=False)).id == r1.id
    assert await store.queue_positions([mux.id]) == {mux.id: 0}


async def test_mux_comes_first_when_one_worker_takes_both(store):
    await render(store, 1)
    mux = await store.enqueue(JobKind.MUX, None, user_id=1)
    assert await store.queue_positions([mux.id]) == {mux.id: 1}
    assert (await store.claim("w")).id == mux.id


async def test_size_filter(store):
    small = await render(store, 1, width=512, height=512)
    wide = await render(store, 2, width=768, height=512)
    await store.enqueue(JobKind.MUX, None, user_id=3)
    # A batch only grows with the job that is next in line anyway: the wide job does not jump
    # ahead of the small one for a 768x512 batch.
    assert await store.claim("w", batch_key="512x768 canny") is None
    assert await store.claim("w", batch_key="768x512 canny") is None
    assert await store.claim("w", renders=False, batch_key="512x512 canny") is None
    assert (await store.claim("w", batch_key="512x512 canny")).id == small.id
    assert await store.claim("w", batch_key="512x512 canny") is None
    assert (await store.claim("w", batch_key="768x512 canny")).id == wide.id


# -- cancel and restart -----------------------------------------------------------------------------
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


# -- concurrency ------------------------------------------------------------------------------------
async def test_200_concurrent_enqueues(store):
    jobs = await asyncio.gather(*(render(store, i % 7, seed=i) for i in range(200)))
    assert len({job.id for job in jobs}) == 200
    assert len(await store.active_jobs()) == 200


async def test_two_stores_on_one_database_never_claim_the_same_job(store_location):
    async with await JobStore.open(store_location) as one, await JobStore.open(store_location) as two:
        ids = [(await render(one, i % 5)).id for i in range(50)]

        async def drain(store: JobStore, worker: str) -> list[int]:
            got = []
            while (job := await store.claim(worker)) is not None:
                got.append(job.id)
            return got

        results = await asyncio.gather(drain(one, "a"), drain(two, "b"), drain(one, "c"), drain(two, "d"))
        claimed = [job_id for got in results for job_id in got]
        assert sorted(claimed) == ids
        assert all(job.attempts == 1 for job in await one.active_jobs())


# -- usage and settings -------------------------------------------------------------------------------
async def test_usage_counts_renders_per_utc_day(store):
    late = await render(store, 1, now=MIDNIGHT - 10)  # 23:59:50
    usage = await store.usage(1, 1, now=MIDNIGHT - 5)
    assert usage == Usage(renders_today=1, queued=1, last_request_at=MIDNIGHT - 10)
    assert (await store.usage(1, 1, now=MIDNIGHT + 10)).renders_today == 0  # 00:00:10 the next day

    await render(store, 1, now=MIDNIGHT + 10)
    await store.enqueue(JobKind.MUX, None, user_id=1, guild_id=1, now=MIDNIGHT + 11)  # not a render
    await render(store, 1, guild=2, now=MIDNIGHT + 12)  # another guild
    await render(store, 2, now=MIDNIGHT + 13)  # another user
    assert await store.usage(1, 1, now=MIDNIGHT + 20) == Usage(renders_today=1, queued=2, last_request_at=MIDNIGHT + 10)

    assert (await store.claim("w", mux=False, now=MIDNIGHT + 30)).id == late.id
    await store.finish(late.id, JobStatus.DONE)
    usage = await store.usage(1, 1, now=MIDNIGHT + 40)
    assert (usage.renders_today, usage.queued) == (1, 1)  # finished jobs still count for the day
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

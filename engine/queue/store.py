"""The job store: SQLite through aiosqlite, the contract between the bot and the runtime.

The bot enqueues requests and reads progress; the runtime claims jobs (in the fair order of
``engine.queue.order``) and writes progress and results. Several processes may share one file: the
database is in WAL mode, writers wait up to ``BUSY_TIMEOUT_MS`` for each other, and every write runs
under ``BEGIN IMMEDIATE`` (so a claim's read and write see no other writer in between). Inside one
process a single connection is shared, and an ``asyncio.Lock`` keeps the transactions of concurrent
coroutines from interleaving.

This module has opening, transactions and the writes; the read queries are in ``engine.queue.reads``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from engine.queue.jobs import Job, JobKind, JobStatus
from engine.queue.order import FAIR_ORDER
from engine.queue.reads import JobReads, marks, now_or
from engine.queue.schema import migrate
from engine.render.params import RenderParams

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


class JobStore(JobReads):
    """Open with ``await JobStore.open(path)``; close with ``await store.close()`` or ``async with``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = asyncio.Lock()

    # -- opening and closing ----------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | os.PathLike) -> JobStore:
        """Open (creating it and its folder if needed) and migrate the database at ``path``."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: this module writes its own BEGIN IMMEDIATE / COMMIT.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> JobStore:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(self):
        """One write transaction at a time in this process; other processes wait on the file lock."""
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
            except BaseException:
                await self._rollback()
                raise
            await self._db.execute("COMMIT")

    async def _rollback(self) -> None:
        # Runs after whatever this connection still has queued, BEGIN included, so it also ends a
        # transaction whose BEGIN was awaited by a task cancelled before it ran.
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:  # BEGIN itself failed (e.g. busy): nothing to roll back
            pass

    async def _require(self, db: aiosqlite.Connection, job_id: int) -> Job:
        job = await self._fetch_job(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        if job is None:
            raise KeyError(f"no job {job_id}")
        return job

    # -- the bot's side: requests -----------------------------------------------------------------
    async def enqueue(
        self,
        kind: JobKind,
        params: RenderParams | None,
        *,
        user_id: int,
        guild_id: int | None = None,
        origin_id: int | None = None,
        parent_id: int | None = None,
        audio_path: str | None = None,
        now: float | None = None,
    ) -> Job:
        """Queue a job. Render kinds need ``params`` with a concrete seed; mux stores no params.

        ``origin_id`` is where the request came from (the front end answers there); ``None`` for none.
        """
        kind = JobKind(kind)
        if kind.renders:
            if params is None or params.seed is None:
                raise ValueError(f"a {kind.value} job needs render parameters with a seed (use params.with_seed())")
            params_json, seed, frames_total = json.dumps(params.to_dict()), params.seed, params.frames
        else:
            params_json, seed, frames_total = None, None, 0
        async with self._transaction() as db:
            job = await self._fetch_job(
                db,
                """INSERT INTO jobs (kind, status, params, seed, guild_id, origin_id, user_id, parent_id,
                                     audio_path, frames_total, created_at)
                   VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *""",
                (
                    kind.value,
                    params_json,
                    seed,
                    guild_id,
                    origin_id,
                    user_id,
                    parent_id,
                    audio_path,
                    frames_total,
                    now_or(now),
                ),
            )
        log.info("job %d queued (%s by user %d, guild %s)", job.id, kind.value, user_id, guild_id)
        return job

    async def request_cancel(self, job_id: int, now: float | None = None) -> Job:
        """Queued: cancelled at once. Running: flag it; the runtime stops it. Finished: unchanged."""
        async with self._transaction() as db:
            job = await self._require(db, job_id)
            if job.status is JobStatus.QUEUED:
                job = await self._fetch_job(
                    db,
                    """UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?,
                                       eta_seconds = NULL
                       WHERE id = ? RETURNING *""",
                    (now_or(now), job_id),
                )
                log.info("job %d queued → cancelled", job_id)
            elif job.status is JobStatus.RUNNING and not job.cancel_requested:
                job = await self._fetch_job(
                    db, "UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING *", (job_id,)
                )
                log.info("job %d running: cancel requested", job_id)
        return job

    async def set_posts(
        self, job_id: int, *, progress_post_id: int | None = None, result_post_id: int | None = None
    ) -> None:
        """Remember the front end's posts of a job; ``None`` leaves a column as it is."""
        async with self._transaction() as db:
            await db.execute(
                """UPDATE jobs SET progress_post_id = COALESCE(?, progress_post_id),
                                   result_post_id = COALESCE(?, result_post_id)
                   WHERE id = ?""",
                (progress_post_id, result_post_id, job_id),
            )

    # -- the runtime's side: claiming and reporting -----------------------------------------------
    async def claim(
        self,
        worker: str,
        *,
        renders: bool = True,
        mux: bool = True,
        batch_key: str | None = None,
        job_id: int | None = None,
        now: float | None = None,
    ) -> Job | None:
        """Move the next queued job (fair order) to running for ``worker``; ``None`` if there is none.

        ``batch_key`` (a batch asking for one more job: ``RenderParams.batch_key()`` of its jobs)
        takes the next render job only if its key is the same: a batch never lets its kind jump the
        queue, so a job of another size (or model, ...) waits only until the batch drains.
        With both lanes allowed a mux job comes first: it is short CPU work and never waits
        behind renders. ``job_id`` takes that queued job only (``engine.queue.model_order`` picks it).
        """
        lanes = (["render"] if renders else []) + (["mux"] if mux and batch_key is None else [])
        if not lanes:
            return None
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                f"""{FAIR_ORDER}
                    SELECT f.id, j.params
                    FROM fair_order AS f JOIN jobs AS j ON j.id = f.id
                    WHERE f.lane IN ({marks(lanes)}) AND (? IS NULL OR f.id = ?)
                    ORDER BY f.lane = 'mux' DESC, f.position
                    LIMIT 1""",
                [*lanes, job_id, job_id],
            )
            if not rows:
                return None
            if batch_key is not None and RenderParams.from_dict(json.loads(rows[0]["params"])).batch_key() != batch_key:
                return None
            job = await self._fetch_job(
                db,
                """UPDATE jobs SET status = 'running', worker = ?, started_at = ?, attempts = attempts + 1
                   WHERE id = ? AND status = 'queued' RETURNING *""",
                (worker, now_or(now), rows[0]["id"]),
            )
            if job is None:  # cannot happen under BEGIN IMMEDIATE; never hand out a job twice
                return None
            await db.execute(
                """INSERT INTO claim_turns (user_id, lane, turn)
                   VALUES (?, ?, (SELECT COALESCE(MAX(turn), 0) + 1 FROM claim_turns))
                   ON CONFLICT (user_id, lane) DO UPDATE SET turn = excluded.turn""",
                (job.user_id, job.kind.lane),
            )
        log.info("job %d queued → running (worker %s, attempt %d)", job.id, worker, job.attempts)
        return job

    async def update_progress(
        self,
        job_id: int,
        frames_done: int,
        *,
        preview_path: str | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        """Record progress of a running job; ``None`` keeps the preview or ETA already stored."""
        async with self._transaction() as db:
            await db.execute(
                """UPDATE jobs SET frames_done = ?, preview_path = COALESCE(?, preview_path),
                                   eta_seconds = COALESCE(?, eta_seconds)
                   WHERE id = ? AND status = 'running'""",
                (frames_done, None if preview_path is None else str(preview_path), eta_seconds, job_id),
            )

    async def finish(
        self,
        job_id: int,
        status: JobStatus,
        *,
        result_path: str | None = None,
        error: str | None = None,
        now: float | None = None,
    ) -> Job:
        """Record the final status. Shielded: cancelling the caller does not lose this write.

        A job that is already finished keeps its first final status (returned unchanged).
        """
        status = JobStatus(status)
        if not status.finished:
            raise ValueError(f"finish() needs done, failed or cancelled, got {status.value}")
        return await asyncio.shield(self._finish(job_id, status, result_path, error, now_or(now)))

    async def _finish(self, job_id: int, status: JobStatus, result_path, error, now: float) -> Job:
        async with self._transaction() as db:
            before = await self._require(db, job_id)
            if before.status.finished:
                log.warning("job %d is already %s; not marking it %s", job_id, before.status.value, status.value)
                return before
            job = await self._fetch_job(
                db,
                """UPDATE jobs SET status = ?, result_path = COALESCE(?, result_path), error = ?,
                                   finished_at = ?, eta_seconds = NULL
                   WHERE id = ? RETURNING *""",
                (status.value, None if result_path is None else str(result_path), error, now, job_id),
            )
        log.info("job %d %s → %s", job_id, before.status.value, status.value)
        return job

    async def heartbeat(self, worker: str, now: float | None = None) -> None:
        """Record that ``worker`` is alive (the runtime calls this every few seconds)."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO workers (name, seen_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at",
                (worker, now_or(now)),
            )

    async def requeue_running(
        self,
        now: float | None = None,
        *,
        worker: str | None = None,
        stale_after: float | None = None,
        dead: Iterable[str] = (),
        max_attempts: int | None = None,
    ) -> list[int]:
        """Put jobs left running by a dead process back in the queue; return their ids.

        Only ``worker``'s jobs when given. With ``stale_after`` (seconds), only the jobs of workers
        known ``dead`` or not heard from (``heartbeat``) for that long; without it, every running
        job. ``frames_done`` is kept: the engine resumes from the frames on disk. A job whose
        cancel was already requested is cancelled instead, and one that has already been started
        ``max_attempts`` times fails instead (a render that kills its worker is not retried forever).
        """
        if worker is not None:
            who, args = "AND worker = ?", [worker]
        elif stale_after is not None:
            dead = list(dead)
            who = f"""AND (worker IS NULL OR worker IN ({marks(dead)}) OR NOT EXISTS (
                          SELECT 1 FROM workers AS w WHERE w.name = jobs.worker AND w.seen_at >= ?))"""
            args = [*dead, now_or(now) - stale_after]
        else:
            who, args = "", []
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT id, cancel_requested, attempts FROM jobs WHERE status = 'running' {who} ORDER BY id", args
            )
            cancelled = [row["id"] for row in rows if row["cancel_requested"]]
            exhausted = [
                row["id"]
                for row in rows
                if not row["cancel_requested"] and max_attempts is not None and row["attempts"] >= max_attempts
            ]
            requeued = [row["id"] for row in rows if not row["cancel_requested"] and row["id"] not in exhausted]
            if exhausted:
                await db.execute(
                    f"""UPDATE jobs SET status = 'failed', finished_at = ?, eta_seconds = NULL, error = ?
                        WHERE id IN ({marks(exhausted)})""",
                    [
                        now_or(now),
                        f"This render stopped its worker {max_attempts} times, so it was not tried "
                        "again; try other settings or ask the host to check the log.",
                        *exhausted,
                    ],
                )
            if cancelled:
                await db.execute(
                    f"""UPDATE jobs SET status = 'cancelled', finished_at = ?, eta_seconds = NULL
                        WHERE id IN ({marks(cancelled)})""",
                    [now_or(now), *cancelled],
                )
            if requeued:
                await db.execute(
                    f"""UPDATE jobs SET status = 'queued', worker = NULL, started_at = NULL, eta_seconds = NULL
                        WHERE id IN ({marks(requeued)})""",
                    requeued,
                )
        for job_id in cancelled:
            log.info("job %d running → cancelled (its process died after the cancel was requested)", job_id)
        for job_id in exhausted:
            log.info("job %d running → failed (its worker died on each of %d attempts)", job_id, max_attempts)
        for job_id in requeued:
            log.info("job %d running → queued (its process died; it will resume)", job_id)
        return requeued

    # -- settings -------------------------------------------------------------------------------
    async def update_settings(self, guild_id: int, changes: dict, now: float | None = None) -> dict:
        """Merge ``changes`` into a guild's stored settings and return them; a value of ``None`` removes that key.

        Values must be JSON-serialisable; the store does not look inside them.
        """
        async with self._transaction() as db:
            rows = await db.execute_fetchall("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
            data = json.loads(rows[0]["data"]) if rows else {}
            for name, value in changes.items():
                if value is None:
                    data.pop(name, None)
                else:
                    data[name] = value
            await db.execute(
                """INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?)
                   ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at""",
                (guild_id, json.dumps(data), now_or(now)),
            )
        log.info("guild %d settings changed: %s", guild_id, changes)
        return data

    async def clear_settings(self, guild_id: int) -> None:
        """Forget every setting a guild stored."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
        log.info("guild %d settings cleared", guild_id)

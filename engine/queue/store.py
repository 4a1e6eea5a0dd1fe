"""The job store: SQLite through aiosqlite, the contract between the bot and the runtime.

The bot enqueues requests and reads progress; the runtime claims jobs (in a fair order) and
writes progress and results. Several processes may share one file: the database is in WAL mode,
writers wait up to ``BUSY_TIMEOUT_MS`` for each other, and every write runs under
``BEGIN IMMEDIATE`` (so a claim's read and write see no other writer in between). Inside one process a single connection is shared, and an
``asyncio.Lock`` keeps the transactions of concurrent coroutines from interleaving.

Fair order (``claim``): round-robin over users. Among the queued jobs a claim may take, pick the
user who was served longest ago (never served first, ties by their oldest job), then that
user's oldest queued job. "Served" is tracked per lane (renders, mux) in ``claim_turns``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from engine.config import LimitsConfig
from engine.queue.jobs import Job, JobKind, JobStatus
from engine.queue.limits import DAY, LIMIT_NAMES, GuildLimits, Usage, check_changes
from engine.queue.schema import migrate
from engine.render.params import RenderParams

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
RENDER_KINDS = tuple(kind.value for kind in JobKind if kind.renders)
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
FINISHED = tuple(status.value for status in JobStatus if status.finished)


def _lane(kind: JobKind | str) -> str:
    return "render" if JobKind(kind).renders else "mux"


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _marks(values: Iterable) -> str:
    return ", ".join("?" for _ in values)


class JobStore:
    """Open with ``await JobStore.open(path)``; close with ``await store.close()`` or ``async with``."""

    def __init__(self, db: aiosqlite.Connection, limits: LimitsConfig) -> None:
        self._db = db
        self._defaults = GuildLimits.from_config(limits)
        self._write_lock = asyncio.Lock()

    # -- opening and closing ----------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | os.PathLike, *, limits: LimitsConfig | None = None) -> JobStore:
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
        return cls(db, limits or LimitsConfig())

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

    async def _fetch_job(self, db: aiosqlite.Connection, sql: str, args: Iterable = ()) -> Job | None:
        rows = await db.execute_fetchall(sql, tuple(args))
        return Job.from_row(rows[0]) if rows else None

    async def _fetch_jobs(self, sql: str, args: Iterable = ()) -> list[Job]:
        return [Job.from_row(row) for row in await self._db.execute_fetchall(sql, tuple(args))]

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
        channel_id: int | None = None,
        parent_id: int | None = None,
        audio_path: str | None = None,
        now: float | None = None,
    ) -> Job:
        """Queue a job. Render kinds need ``params`` with a concrete seed; mux stores no params."""
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
                """INSERT INTO jobs (kind, status, params, seed, guild_id, channel_id, user_id, parent_id,
                                     audio_path, frames_total, created_at)
                   VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *""",
                (kind.value, params_json, seed, guild_id, channel_id, user_id, parent_id, audio_path,
                 frames_total, _now(now)),
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
                    (_now(now), job_id),
                )
                log.info("job %d queued → cancelled", job_id)
            elif job.status is JobStatus.RUNNING and not job.cancel_requested:
                job = await self._fetch_job(
                    db, "UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING *", (job_id,)
                )
                log.info("job %d running: cancel requested", job_id)
        return job

    async def set_messages(
        self, job_id: int, *, progress_message_id: int | None = None, result_message_id: int | None = None
    ) -> None:
        """Remember the Discord messages of a job; ``None`` leaves a column as it is."""
        async with self._transaction() as db:
            await db.execute(
                """UPDATE jobs SET progress_message_id = COALESCE(?, progress_message_id),
                                   result_message_id = COALESCE(?, result_message_id)
                   WHERE id = ?""",
                (progress_message_id, result_message_id, job_id),
            )

    # -- the runtime's side: claiming and reporting -----------------------------------------------
    async def claim(
        self,
        worker: str,
        *,
        renders: bool = True,
        mux: bool = True,
        size: tuple[int, int] | None = None,
        now: float | None = None,
    ) -> Job | None:
        """Move the next queued job (fair order) to running for ``worker``; ``None`` if there is none.

        ``size=(width, height)`` (a batch of that size asking for one more job) takes the next
        render job only if it has that size: a batch never lets its size jump the queue, so a job
        of another size waits only until the batch drains.
        With both lanes allowed a mux job comes first: it is short CPU work and never waits
        behind renders.
        """
        kinds = [k for k in RENDER_KINDS if renders] + (["mux"] if mux and size is None else [])
        if not kinds:
            return None
        where = [f"j.kind IN ({_marks(kinds)})"]
        args: list = list(kinds)
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                f"""SELECT j.id, j.kind, j.user_id, json_extract(j.params, '$.width') AS width,
                           json_extract(j.params, '$.height') AS height FROM jobs AS j
                    LEFT JOIN claim_turns AS t
                           ON t.user_id = j.user_id
                          AND t.lane = CASE j.kind WHEN 'mux' THEN 'mux' ELSE 'render' END
                    WHERE j.status = 'queued' AND j.cancel_requested = 0 AND {' AND '.join(where)}
                    ORDER BY j.kind = 'mux' DESC, t.turn IS NOT NULL, t.turn, j.id
                    LIMIT 1""",
                args,
            )
            if not rows or (size is not None and (rows[0]["width"], rows[0]["height"]) != tuple(size)):
                return None
            job = await self._fetch_job(
                db,
                """UPDATE jobs SET status = 'running', worker = ?, started_at = ?, attempts = attempts + 1
                   WHERE id = ? AND status = 'queued' RETURNING *""",
                (worker, _now(now), rows[0]["id"]),
            )
            if job is None:  # cannot happen under BEGIN IMMEDIATE; never hand out a job twice
                return None
            await db.execute(
                """INSERT INTO claim_turns (user_id, lane, turn)
                   VALUES (?, ?, (SELECT COALESCE(MAX(turn), 0) + 1 FROM claim_turns))
                   ON CONFLICT (user_id, lane) DO UPDATE SET turn = excluded.turn""",
                (job.user_id, _lane(job.kind)),
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
        return await asyncio.shield(self._finish(job_id, status, result_path, error, _now(now)))

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
                (worker, _now(now)),
            )

    async def running_workers(self) -> list[str]:
        """The workers that hold running jobs."""
        rows = await self._db.execute_fetchall(
            "SELECT DISTINCT worker FROM jobs WHERE status = 'running' AND worker IS NOT NULL ORDER BY worker"
        )
        return [row["worker"] for row in rows]

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
            who = f"""AND (worker IS NULL OR worker IN ({_marks(dead)}) OR NOT EXISTS (
                          SELECT 1 FROM workers AS w WHERE w.name = jobs.worker AND w.seen_at >= ?))"""
            args = [*dead, _now(now) - stale_after]
        else:
            who, args = "", []
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT id, cancel_requested, attempts FROM jobs WHERE status = 'running' {who} ORDER BY id", args
            )
            cancelled = [row["id"] for row in rows if row["cancel_requested"]]
            exhausted = [row["id"] for row in rows if not row["cancel_requested"]
                         and max_attempts is not None and row["attempts"] >= max_attempts]
            requeued = [row["id"] for row in rows if not row["cancel_requested"] and row["id"] not in exhausted]
            if exhausted:
                await db.execute(
                    f"""UPDATE jobs SET status = 'failed', finished_at = ?, eta_seconds = NULL, error = ?
                        WHERE id IN ({_marks(exhausted)})""",
                    [_now(now), f"This render stopped its worker {max_attempts} times, so it was not tried "
                                "again; try other settings or ask the host to check the log.", *exhausted],
                )
            if cancelled:
                await db.execute(
                    f"""UPDATE jobs SET status = 'cancelled', finished_at = ?, eta_seconds = NULL
                        WHERE id IN ({_marks(cancelled)})""",
                    [_now(now), *cancelled],
                )
            if requeued:
                await db.execute(
                    f"""UPDATE jobs SET status = 'queued', worker = NULL, started_at = NULL, eta_seconds = NULL
                        WHERE id IN ({_marks(requeued)})""",
                    requeued,
                )
        for job_id in cancelled:
            log.info("job %d running → cancelled (its process died after the cancel was requested)", job_id)
        for job_id in exhausted:
            log.info("job %d running → failed (its worker died on each of %d attempts)", job_id, max_attempts)
        for job_id in requeued:
            log.info("job %d running → queued (its process died; it will resume)", job_id)
        return requeued

    # -- reading ----------------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job | None:
        return await self._fetch_job(self._db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def find_by_message(self, message_id: int) -> Job | None:
        """The job whose progress or result message this is."""
        return await self._fetch_job(
            self._db,
            """SELECT * FROM jobs WHERE progress_message_id = ? OR result_message_id = ?
               ORDER BY id DESC LIMIT 1""",
            (message_id, message_id),
        )

    async def queue_position(self, job_id: int) -> int:
        """1-based place in the order ``claim`` would take the queued jobs of its lane; 0 if not queued.

        Exact for one claimer taking every size; a ``size``-filtered claim can take a job early.
        """
        job = await self.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return 0
        lane = _lane(job.kind)
        kinds = RENDER_KINDS if lane == "render" else ("mux",)
        queued = await self._db.execute_fetchall(
            f"""SELECT id, user_id FROM jobs
                WHERE status = 'queued' AND cancel_requested = 0 AND kind IN ({_marks(kinds)}) ORDER BY id""",
            kinds,
        )
        turns = await self._db.execute_fetchall("SELECT user_id, turn FROM claim_turns WHERE lane = ?", (lane,))
        order = fair_order([(row["id"], row["user_id"]) for row in queued], {r["user_id"]: r["turn"] for r in turns})
        return order.index(job_id) + 1 if job_id in order else 0

    async def active_jobs(self, guild_id: int | None = None) -> list[Job]:
        """Queued and running jobs, oldest first; of one guild when given."""
        guild, args = ("AND guild_id = ?", [guild_id]) if guild_id is not None else ("", [])
        return await self._fetch_jobs(
            f"SELECT * FROM jobs WHERE status IN ({_marks(ACTIVE)}) {guild} ORDER BY created_at, id",
            [*ACTIVE, *args],
        )

    async def latest_done(
        self,
        user_id: int,
        guild_id: int | None = None,
        kinds: Iterable[JobKind] = (JobKind.ANIMATE, JobKind.REROLL),
    ) -> Job | None:
        """The user's most recently finished successful job of ``kinds`` (in one guild when given)."""
        kinds = [JobKind(k).value for k in kinds]
        if not kinds:
            return None
        guild, args = ("AND guild_id = ?", [guild_id]) if guild_id is not None else ("", [])
        return await self._fetch_job(
            self._db,
            f"""SELECT * FROM jobs
                WHERE status = 'done' AND user_id = ? AND kind IN ({_marks(kinds)}) {guild}
                ORDER BY finished_at DESC, id DESC LIMIT 1""",
            [user_id, *kinds, *args],
        )

    async def finished_before(self, cutoff: float) -> list[Job]:
        """Finished jobs that ended before ``cutoff`` (for retention cleanup), oldest first."""
        return await self._fetch_jobs(
            f"""SELECT * FROM jobs WHERE status IN ({_marks(FINISHED)}) AND finished_at < ?
                ORDER BY finished_at, id""",
            [*FINISHED, cutoff],
        )

    # -- limits -----------------------------------------------------------------------------------
    async def usage(self, guild_id: int | None, user_id: int, now: float | None = None) -> Usage:
        """What ``user_id`` has used in ``guild_id`` (render jobs only; ``None`` is DMs/CLI)."""
        day_start = (_now(now) // DAY) * DAY
        rows = await self._db.execute_fetchall(
            f"""SELECT COALESCE(SUM(created_at >= ?), 0)                   AS renders_today,
                       COALESCE(SUM(status IN ('queued', 'running')), 0) AS queued,
                       MAX(created_at)                                    AS last_request_at
                FROM jobs
                WHERE guild_id IS ? AND user_id = ? AND kind IN ({_marks(RENDER_KINDS)})""",
            [day_start, guild_id, user_id, *RENDER_KINDS],
        )
        row = rows[0]
        return Usage(
            renders_today=row["renders_today"], queued=row["queued"], last_request_at=row["last_request_at"]
        )

    async def get_limits(self, guild_id: int) -> GuildLimits:
        """The configured defaults with this guild's overrides on top."""
        rows = await self._db.execute_fetchall("SELECT * FROM guild_limits WHERE guild_id = ?", (guild_id,))
        if not rows:
            return self._defaults
        overrides = {name: rows[0][name] for name in LIMIT_NAMES if rows[0][name] is not None}
        if "allowed_channel_ids" in overrides:
            overrides["allowed_channel_ids"] = tuple(json.loads(overrides["allowed_channel_ids"]))
        return dataclasses.replace(self._defaults, **overrides)

    async def set_limits(self, guild_id: int, **changes) -> GuildLimits:
        """Override some limits of a guild (``UserError`` for an unknown name or bad value).

        A value of ``None`` puts that limit back to the configured default.
        """
        changes = check_changes(changes)
        if changes:
            names = list(changes)  # only names from LIMIT_NAMES reach the SQL text
            values = [json.dumps(list(v)) if n == "allowed_channel_ids" and v is not None else v
                      for n, v in changes.items()]
            async with self._transaction() as db:
                await db.execute(
                    f"""INSERT INTO guild_limits (guild_id, {', '.join(names)}, updated_at)
                        VALUES (?, {_marks(names)}, ?)
                        ON CONFLICT (guild_id) DO UPDATE SET
                            {', '.join(f'{n} = excluded.{n}' for n in names)}, updated_at = excluded.updated_at""",
                    [guild_id, *values, time.time()],
                )
            log.info("guild %d limits changed: %s", guild_id, changes)
        return await self.get_limits(guild_id)

    async def reset_limits(self, guild_id: int) -> GuildLimits:
        """Forget every override of a guild: back to the configured defaults."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM guild_limits WHERE guild_id = ?", (guild_id,))
        log.info("guild %d limits reset to the defaults", guild_id)
        return self._defaults

    # -- the bot's side: delivery (added for bot/progress.py) -------------------------------------
    async def undelivered(self) -> list[Job]:
        """Finished jobs asked for from a channel whose outcome the bot has not posted yet.

        The bot records the message it posted as ``result_message_id``; until then the job is
        still owed to its channel (after a restart too). Oldest first.
        """
        return await self._fetch_jobs(
            f"""SELECT * FROM jobs
                WHERE status IN ({_marks(FINISHED)}) AND channel_id IS NOT NULL AND result_message_id IS NULL
                ORDER BY finished_at, id""",
            FINISHED,
        )


def fair_order(queued: list[tuple[int, int]], turns: dict[int, int]) -> list[int]:
    """The order in which ``claim`` takes ``queued`` ``(job_id, user_id)`` pairs (ids ascending).

    Each step serves the user served longest ago (never served first, ties by oldest job), then
    that user's oldest job; serving a user makes them the most recently served.
    """
    pending: dict[int, list[int]] = {}
    for job_id, user_id in queued:
        pending.setdefault(user_id, []).append(job_id)
    for jobs in pending.values():
        jobs.reverse()  # pop() takes the oldest
    turns = dict(turns)
    last = max(turns.values(), default=0)
    order: list[int] = []

    def waited_longest(user: int) -> tuple[bool, int, int]:
        return user in turns, turns.get(user, 0), pending[user][-1]

    while pending:
        user = min(pending, key=waited_longest)
        order.append(pending[user].pop())
        if not pending[user]:
            del pending[user]
        last += 1
        turns[user] = last
    return order

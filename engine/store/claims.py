"""The runtime's side of the job store: claims as leases, fenced writes, heartbeats and re-queuing.

A claim is a lease: the job is the worker's until ``lease_expires_at`` (database clock), renewed by
the worker's :meth:`heartbeat` and by every frame it reports. Each claim also bumps the job's
``lease_token``, its fencing token: every write a worker makes for the job (progress, saved frames,
the result, the final status) names the token it was given, and is refused with :class:`LeaseLost`
once the job was claimed again, so a worker that was paused or cut off and comes back can never
overwrite, double-post or resurrect a job.

Claims run one at a time (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL a transaction-scoped advisory
lock, since ``FOR UPDATE SKIP LOCKED`` cannot be combined with the window functions of the fair order
and the fair order itself, the ``claim_turns`` table, is one shared state every claim updates).

An attempt that ends without a new saved frame (its worker died before one) is a *stalled* attempt;
only those count towards giving a job up, so a host killed again and again while it makes progress
never loses a job.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.request.params import RenderParams
from engine.store.jobs import Job, JobStatus
from engine.store.order import FAIR_ORDER
from engine.store.reads import marks, now_or

log = logging.getLogger(__name__)

CLAIM_LOCK = 0x636C6169  # "clai": the advisory lock PostgreSQL claims take turns on
LEASE_SECONDS = 30.0


class LeaseLost(Exception):
    """A worker's write for a job it no longer holds (the job was claimed again, or finished)."""

    def __init__(self, job_id: int, token: int) -> None:
        super().__init__(f"job {job_id}: the lease with token {token} was lost (claimed again or finished)")
        self.job_id = job_id
        self.token = token


def stalled_sentence(max_attempts: int) -> str:
    return (
        f"This render stopped its worker {max_attempts} times before it saved a frame, so it was not tried "
        "again; try other settings or ask the host to check the log."
    )


class WorkerWrites:
    """Mixed into :class:`engine.store.store.JobStore` (which provides ``_db``, ``blobs``, ``_t``, ``_now_sql``)."""

    lease_seconds: float = LEASE_SECONDS

    async def _fenced(self, tx, job_id: int, token: int | None) -> None:
        """Refuse the write unless the job is running under ``token`` (no token: unfenced, for tests and tools)."""
        if token is None:
            return
        rows = await tx.execute_fetchall(
            "SELECT 1 FROM jobs WHERE id = ? AND status = 'running' AND lease_token = ?", (job_id, token)
        )
        if not rows:
            raise LeaseLost(job_id, token)

    async def _save_files(self, tx, job_id: int, files: Mapping[str, Path] | None) -> None:
        for key, path in (files or {}).items():
            await self.blobs.save(key, path, job_id=job_id, tx=tx)

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
        """Lease the next queued job (fair order) to ``worker``; ``None`` if there is none.

        ``batch_key`` (a batch asking for one more job: ``RenderParams.batch_key()`` of its jobs)
        takes the next render job only if its key is the same: a batch never lets its kind jump the
        queue, so a job of another size (or model, ...) waits only until the batch drains.
        With both lanes allowed a mux job comes first: it is short CPU work and never waits
        behind renders. ``job_id`` takes that queued job only (``engine.runtime.model_order`` picks it).
        The job returned carries its fencing token (``lease_token``).
        """
        lanes = (["render"] if renders else []) + (["mux"] if mux and batch_key is None else [])
        if not lanes:
            return None
        when = self._t(now)

        async def body(tx) -> Job | None:
            await tx.lock(CLAIM_LOCK)
            rows = await tx.execute_fetchall(
                f"""{FAIR_ORDER}
                    SELECT f.id, j.params
                    FROM fair_order AS f JOIN jobs AS j ON j.id = f.id
                    WHERE f.lane IN ({marks(lanes)}) {"AND f.id = ?" if job_id is not None else ""}
                    ORDER BY f.lane = 'mux' DESC, f.position
                    LIMIT 1""",
                [*lanes, *([job_id] if job_id is not None else [])],
            )
            if not rows:
                return None
            if batch_key is not None and RenderParams.from_dict(json.loads(rows[0]["params"])).batch_key() != batch_key:
                return None
            job = await self._fetch_job(
                tx,
                f"""UPDATE jobs SET status = 'running', worker = ?, started_at = COALESCE(?, {self._now_sql}),
                                   attempts = attempts + 1, lease_token = lease_token + 1,
                                   lease_expires_at = COALESCE(?, {self._now_sql}) + ?, claimed_frames = frames_done
                    WHERE id = ? AND status = 'queued' RETURNING *""",
                (worker, when, when, self.lease_seconds, rows[0]["id"]),
            )
            if job is None:  # cannot happen while claims take turns; never hand out a job twice
                return None
            await tx.execute(
                """INSERT INTO claim_turns (user_id, lane, turn)
                   VALUES (?, ?, (SELECT COALESCE(MAX(turn), 0) + 1 FROM claim_turns))
                   ON CONFLICT (user_id, lane) DO UPDATE SET turn = excluded.turn""",
                (job.user_id, job.kind.lane),
            )
            return job

        job = await self._db.run(body)
        if job is not None:
            log.info("job %d queued → running (worker %s, attempt %d)", job.id, worker, job.attempts)
        return job

    async def update_progress(
        self,
        job_id: int,
        frames_done: int,
        *,
        preview_path: str | None = None,
        eta_seconds: float | None = None,
        token: int | None = None,
        files: Mapping[str, Path] | None = None,
        now: float | None = None,
    ) -> None:
        """Record progress of a running job (and renew its lease); ``None`` keeps the preview or ETA stored.

        ``files`` (blob key → local file: the new frame, the preview) are saved in the same
        transaction, so a frame counts exactly when it is saved. With ``token``, :class:`LeaseLost`
        once the job is no longer this claim's.
        """
        when = self._t(now)

        async def body(tx) -> None:
            await self._fenced(tx, job_id, token)
            await self._save_files(tx, job_id, files)
            await tx.execute(
                f"""UPDATE jobs SET frames_done = ?, preview_path = COALESCE(?, preview_path),
                                   eta_seconds = COALESCE(?, eta_seconds),
                                   lease_expires_at = COALESCE(?, {self._now_sql}) + ?
                    WHERE id = ? AND status = 'running'""",
                (frames_done, preview_path, eta_seconds, when, self.lease_seconds, job_id),
            )
            await tx.notify(f"progress {job_id}")

        await self._db.run(body)

    async def finish(
        self,
        job_id: int,
        status: JobStatus,
        *,
        result_path: str | None = None,
        error: str | None = None,
        now: float | None = None,
        token: int | None = None,
        files: Mapping[str, Path] | None = None,
    ) -> Job:
        """Record the final status. Shielded: cancelling the caller does not lose this write.

        A job that is already finished keeps its first final status (returned unchanged); with
        ``token`` (a worker's write), :class:`LeaseLost` instead, as for a job claimed again.
        """
        status = JobStatus(status)
        if not status.finished:
            raise ValueError(f"finish() needs done, failed or cancelled, got {status.value}")
        return await asyncio.shield(self._finish(job_id, status, result_path, error, self._t(now), token, files))

    async def _finish(self, job_id, status, result_path, error, when, token, files) -> Job:
        result = None if result_path is None else str(result_path)

        async def body(tx) -> tuple[Job, Job]:
            await self._fenced(tx, job_id, token)
            before = await self._require(tx, job_id)
            if before.status.finished:
                return before, before
            await self._save_files(tx, job_id, files)
            job = await self._fetch_job(
                tx,
                f"""UPDATE jobs SET status = ?, result_path = COALESCE(?, result_path), error = ?,
                                   finished_at = COALESCE(?, {self._now_sql}), eta_seconds = NULL,
                                   frames_done = CASE WHEN ? THEN frames_total ELSE frames_done END
                    WHERE id = ? RETURNING *""",
                (status.value, result, error, when, status is JobStatus.DONE, job_id),
            )
            await tx.notify(f"finished {job_id}")
            return before, job

        before, job = await self._db.run(body)
        if before is job:
            log.warning("job %d is already %s; not marking it %s", job_id, before.status.value, status.value)
        else:
            log.info("job %d %s → %s", job_id, before.status.value, status.value)
        return job

    async def heartbeat(self, worker: str, now: float | None = None, *, jobs: Iterable[int] | None = None) -> None:
        """Record that ``worker`` is alive and renew the leases of the jobs it runs: only ``jobs`` when
        given (those it still serves), so a job it lost track of is not held for ever: its lease runs
        out, and it is re-queued or, once cancelled, ends."""
        when = self._t(now)
        ids = None if jobs is None else list(jobs)
        which, args = ("", []) if ids is None else (f"AND id IN ({marks(ids)})", ids)

        async def body(tx) -> None:
            await tx.execute(
                f"""INSERT INTO workers (name, seen_at) VALUES (?, COALESCE(?, {self._now_sql}))
                    ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at""",
                (worker, when),
            )
            if ids == []:  # PostgreSQL refuses an empty IN ()
                return
            await tx.execute(
                f"""UPDATE jobs SET lease_expires_at = COALESCE(?, {self._now_sql}) + ?
                    WHERE status = 'running' AND worker = ? {which}""",
                (when, self.lease_seconds, worker, *args),
            )

        await self._db.run(body)

    async def holds(self, job_id: int, token: int) -> bool:
        """Whether the claim with ``token`` still holds ``job_id`` (running, not claimed again)."""
        rows = await self._db.execute_fetchall(
            "SELECT 1 FROM jobs WHERE id = ? AND status = 'running' AND lease_token = ?", (job_id, token)
        )
        return bool(rows)

    async def requeue_running(
        self,
        now: float | None = None,
        *,
        worker: str | None = None,
        stale_after: float | None = None,
        dead: Iterable[str] = (),
        max_attempts: int | None = None,
    ) -> list[int]:
        """Put jobs left running by a dead (or stopping) process back in the queue; return their ids.

        Only ``worker``'s jobs when given (a worker stopping: its attempt does not count as stalled).
        With ``stale_after`` (seconds), only the jobs whose lease expired or whose worker is known
        ``dead`` (or, for a job claimed before leases, not heard from for that long); without it,
        every running job. ``frames_done`` is kept: the job resumes from its saved frames. A job
        whose cancel was already requested is cancelled instead. Unless a worker stops, an attempt
        that saved no new frame counts as stalled, and a job stalled ``max_attempts`` times fails
        instead (a render that kills its worker before any frame is not retried forever).
        """
        when = self._t(now)
        clock = f"COALESCE(?, {self._now_sql})"
        if worker is not None:
            who, args = "AND worker = ?", [worker]
        elif stale_after is not None:
            dead = list(dead)
            gone = f"OR worker IN ({marks(dead)})" if dead else ""  # PostgreSQL refuses an empty IN ()
            who = f"""AND (worker IS NULL {gone} OR lease_expires_at < {clock}
                          OR (lease_expires_at IS NULL AND NOT EXISTS (
                              SELECT 1 FROM workers AS w WHERE w.name = jobs.worker AND w.seen_at >= {clock} - ?)))"""
            args = [*dead, when, when, stale_after]
        else:
            who, args = "", []
        counts = worker is None

        async def body(tx):
            rows = await tx.execute_fetchall(
                f"""SELECT id, cancel_requested, frames_done, claimed_frames, stalled_attempts
                    FROM jobs WHERE status = 'running' {who} ORDER BY id""",
                args,
            )
            outcome = {"cancelled": [], "failed": [], "queued": []}
            for row in rows:
                stalled = row["stalled_attempts"] + (1 if counts and row["frames_done"] <= row["claimed_frames"] else 0)
                if row["cancel_requested"]:
                    outcome["cancelled"].append(row["id"])
                    await tx.execute(
                        f"""UPDATE jobs SET status = 'cancelled', finished_at = {clock}, eta_seconds = NULL
                            WHERE id = ?""",
                        (when, row["id"]),
                    )
                elif max_attempts is not None and stalled >= max_attempts:
                    outcome["failed"].append(row["id"])
                    await tx.execute(
                        f"""UPDATE jobs SET status = 'failed', finished_at = {clock}, eta_seconds = NULL,
                                            error = ?, stalled_attempts = ?
                            WHERE id = ?""",
                        (when, stalled_sentence(max_attempts), stalled, row["id"]),
                    )
                else:
                    outcome["queued"].append(row["id"])
                    await tx.execute(
                        """UPDATE jobs SET status = 'queued', worker = NULL, started_at = NULL, eta_seconds = NULL,
                                           lease_expires_at = NULL, stalled_attempts = ?
                           WHERE id = ?""",
                        (stalled, row["id"]),
                    )
            if rows:
                await tx.notify("requeued")
            return outcome

        outcome = await self._db.run(body)
        for job_id in outcome["cancelled"]:
            log.info("job %d running → cancelled (its process died after the cancel was requested)", job_id)
        for job_id in outcome["failed"]:
            log.info("job %d running → failed (its worker died %d times before saving a frame)", job_id, max_attempts)
        for job_id in outcome["queued"]:
            log.info("job %d running → queued (its worker stopped or lost the lease; it will resume)", job_id)
        return outcome["queued"]


__all__ = ["CLAIM_LOCK", "LEASE_SECONDS", "LeaseLost", "WorkerWrites", "now_or", "stalled_sentence"]

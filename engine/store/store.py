"""The job store: the contract between the bot and the runtimes, on SQLite or PostgreSQL.

The bot enqueues requests and reads progress; runtimes (in this process, beside it on one host, or
on other hosts) claim jobs in the fair order of ``engine.store.order`` and write progress and
results. ``JobStore.open`` takes a SQLite file (the zero-configuration default) or a
``postgresql://`` URL; the statements are the same on both (``engine.store.db`` runs them), the
schema's numbered migrations have the same meaning on both (``engine.store.schema``).

This module has opening, the bot's writes and settings; the runtime's writes (leases, fencing,
re-queuing) are in ``engine.store.claims``, the reads in ``engine.store.reads``, the blobs (frames,
previews, videos, uploads) in ``engine.store.blobs``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from engine.request.params import RenderParams
from engine.store.blobs import MAX_BLOB_BYTES, DatabaseBlobs, FileBlobs
from engine.store.claims import LEASE_SECONDS, LeaseLost, WorkerWrites
from engine.store.db import Listener, StoreFault, StoreFull, StoreUnavailable, connect, sqlite_fault, writable_folder
from engine.store.jobs import Job, JobKind, JobStatus, Usage
from engine.store.pictures import PictureRecords
from engine.store.reads import JobReads, now_or
from engine.store.replies import ReplyRecords
from engine.store.schema import migrate
from engine.store.stats import JobStats

__all__ = ["JobStore", "LeaseLost", "StoreFault", "StoreFull", "StoreUnavailable", "open_store"]

log = logging.getLogger(__name__)


class JobStore(WorkerWrites, JobReads, ReplyRecords, JobStats, PictureRecords):
    """Open with ``await JobStore.open(location)``; close with ``await store.close()`` or ``async with``."""

    def __init__(self, db, blobs, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._db = db
        self.blobs = blobs
        self.lease_seconds = lease_seconds
        self._now_sql = db.now_sql

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    # -- opening and closing ----------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        location: str | os.PathLike,
        *,
        data_dir: str | os.PathLike | None = None,
        lease_seconds: float = LEASE_SECONDS,
        max_blob_bytes: int = MAX_BLOB_BYTES,
    ) -> JobStore:
        """Open (creating it if needed) and migrate the store at ``location``: a SQLite file's path,
        or a ``postgresql://`` URL.

        Blobs: on SQLite, files under ``data_dir`` (default: the database file's folder, which is
        the data folder in the usual layout); on PostgreSQL, rows of the database, cached locally
        under ``data_dir`` (default ``./data``). A SQLite file that cannot be opened or read (damaged,
        a folder in its place, no right to write) is a :class:`StoreFault`.
        """
        db = await connect(location, lease_seconds=lease_seconds)
        try:
            await migrate(db)
        except BaseException as err:
            await db.close()
            if isinstance(err, sqlite3.Error) and db.path is not None:  # the file's first read
                raise sqlite_fault(db.path, err) from err
            raise
        if db.dialect == "postgresql":
            blobs = DatabaseBlobs(db, Path(data_dir or "data"), max_bytes=max_blob_bytes)
        else:
            blobs = FileBlobs(Path(data_dir) if data_dir else (db.path.parent if db.path else Path("data")))
        return cls(db, blobs, lease_seconds=lease_seconds)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> JobStore:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def _t(self, now: float | None) -> float | None:
        """The time to write: ``now`` if given (tests pass a fixed clock). Otherwise the host's clock
        on SQLite (one host, one clock) and ``None`` on PostgreSQL, where the statements then read
        the database's clock (``COALESCE(?, clock)``), so hosts whose clocks differ agree on leases."""
        return now if now is not None or self._db.dialect == "postgresql" else now_or(now)

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(payload)`` when jobs change (queued, cancelled, progress, finished, re-queued):
        from any process and host on PostgreSQL (``LISTEN``), from this process on SQLite."""
        self._db.listeners.add(callback)
        if hasattr(self._db, "start_listening"):
            self._db.start_listening()

    def remove_listener(self, callback: Listener) -> None:
        self._db.listeners.remove(callback)

    async def _require(self, db, job_id: int) -> Job:
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
        check: Callable[[Usage], None] | None = None,
        now: float | None = None,
        safety: str = "off",
    ) -> Job:
        """Queue a job. Render kinds need ``params`` with a concrete seed; mux stores no params.

        ``origin_id`` is where the request came from (the front end answers there); ``None`` for none.
        ``check`` (the front end's limits) is called with the user's :meth:`usage` as read inside the
        transaction that inserts the job; whatever it raises rolls the insert back and reaches the
        caller. ``safety`` is the content policy the worker applies to it (``Job.safety``). Requests of
        one user in one guild take turns (SQLite: the one ``BEGIN IMMEDIATE``
        writer; PostgreSQL: an advisory lock of theirs), so simultaneous ones cannot all pass a
        limit on the same count.
        """
        kind = JobKind(kind)
        if kind.renders:
            if params is None or params.seed is None:
                raise ValueError(f"a {kind.value} job needs render parameters with a seed (use params.with_seed())")
            params_json, seed, frames_total = json.dumps(params.to_dict()), params.seed, params.frames
        else:
            params_json, seed, frames_total = None, None, 0

        async def body(tx) -> Job:
            if check is not None:
                await tx.lock(usage_lock(guild_id, user_id))
                check(await self._usage(tx, guild_id, user_id, now))
            job = await self._fetch_job(
                tx,
                f"""INSERT INTO jobs (kind, status, params, seed, guild_id, origin_id, user_id, parent_id,
                                      audio_path, frames_total, created_at, safety)
                    VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, {self._now_sql}), ?) RETURNING *""",
                (kind.value, params_json, seed, guild_id, origin_id, user_id, parent_id, audio_path, frames_total,
                 self._t(now), safety),
            )  # fmt: skip
            await tx.notify(f"queued {job.id}")
            return job

        # Not retried: a commit whose answer was lost may have queued it; the member is told to try again.
        job = await self._db.run(body, retry=False)
        log.info("job %d queued (%s by user %d, guild %s)", job.id, kind.value, user_id, guild_id)
        return job

    async def request_cancel(self, job_id: int, now: float | None = None) -> Job:
        """Queued: cancelled at once. Running: flag it; the runtime stops it. Running with its lease
        run out (no worker holds it: stuck): cancelled at once. Finished: unchanged."""
        when = self._t(now)

        async def body(tx) -> tuple[Job, str | None]:
            job = await self._require(tx, job_id)
            if job.status is JobStatus.QUEUED:
                job = await self._fetch_job(
                    tx,
                    f"""UPDATE jobs SET status = 'cancelled', cancel_requested = 1,
                                        finished_at = COALESCE(?, {self._now_sql}), eta_seconds = NULL
                        WHERE id = ? RETURNING *""",
                    (when, job_id),
                )
                await tx.notify(f"cancelled {job_id}")
                return job, "queued → cancelled"
            if job.status is JobStatus.RUNNING:
                stuck = await self._fetch_job(
                    tx,
                    f"""UPDATE jobs SET status = 'cancelled', cancel_requested = 1,
                                        finished_at = COALESCE(?, {self._now_sql}), eta_seconds = NULL
                        WHERE id = ? AND lease_expires_at < COALESCE(?, {self._now_sql}) RETURNING *""",
                    (when, job_id, when),
                )
                if stuck is not None:  # its worker's writes are fenced off from now on
                    await tx.notify(f"cancelled {job_id}")
                    return stuck, "running (no worker holds it) → cancelled"
            if job.status is JobStatus.RUNNING and not job.cancel_requested:
                job = await self._fetch_job(
                    tx, "UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING *", (job_id,)
                )
                await tx.notify(f"cancel {job_id}")
                return job, "running: cancel requested"
            return job, None

        job, what = await self._db.run(body)
        if what:
            log.info("job %d %s", job_id, what)
        return job

    async def set_posts(
        self, job_id: int, *, progress_post_id: int | None = None, result_post_id: int | None = None
    ) -> None:
        """Remember the front end's posts of a job; ``None`` leaves a column as it is."""
        await self._db.run(
            lambda tx: tx.execute(
                """UPDATE jobs SET progress_post_id = COALESCE(?, progress_post_id),
                                   result_post_id = COALESCE(?, result_post_id)
                   WHERE id = ?""",
                (progress_post_id, result_post_id, job_id),
            )
        )

    # -- settings -------------------------------------------------------------------------------
    async def update_settings(self, guild_id: int, changes: dict, now: float | None = None) -> dict:
        """Merge ``changes`` into a guild's stored settings and return them; a value of ``None`` removes that key.

        Values must be JSON-serialisable; the store does not look inside them.
        """

        async def body(tx) -> dict:
            rows = await tx.execute_fetchall("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
            data = json.loads(rows[0]["data"]) if rows else {}
            for name, value in changes.items():
                if value is None:
                    data.pop(name, None)
                else:
                    data[name] = value
            await tx.execute(
                f"""INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, COALESCE(?, {self._now_sql}))
                    ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at""",
                (guild_id, json.dumps(data), self._t(now)),
            )
            return data

        data = await self._db.run(body)
        log.info("guild %d settings changed: %s", guild_id, changes)
        return data

    async def clear_settings(self, guild_id: int) -> None:
        """Forget every setting a guild stored."""
        await self._db.run(lambda tx: tx.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,)))
        log.info("guild %d settings cleared", guild_id)


def usage_lock(guild_id: int | None, user_id: int) -> int:
    """The advisory lock key (a signed 64-bit integer) that one user's requests in one guild take
    turns on; a collision with another key only makes two requests wait for each other."""
    digest = hashlib.blake2b(f"usage {guild_id} {user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def open_store(config) -> JobStore:
    """The job store an ``engine.config.Config`` names (``[store]``; the SQLite file by default), once
    its data folder is known to be writable (:class:`StoreFault` if not)."""
    writable_folder(config.data_dir)
    return await JobStore.open(
        config.store_location,
        data_dir=config.data_dir,
        lease_seconds=config.store.lease_seconds,
        max_blob_bytes=int(config.store.max_blob_mb * 1024 * 1024),
    )

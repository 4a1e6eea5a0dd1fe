"""The job store's read queries: jobs by id or post, queue positions, listings, usage and settings.

:class:`JobReads` is the read half of :class:`engine.store.store.JobStore` (which adds opening,
transactions and every write). Reads take no lock: SQLite in WAL mode lets them run beside writers,
and PostgreSQL reads see the last committed state. The SQL is the same on both backends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from engine.request.params import RenderParams
from engine.store.jobs import DAY, Job, JobKind, JobStatus, Usage
from engine.store.order import FAIR_ORDER

RENDER_KINDS = tuple(kind.value for kind in JobKind if kind.renders)
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
FINISHED = tuple(status.value for status in JobStatus if status.finished)


def now_or(now: float | None) -> float:
    """``now`` if given (tests pass a fixed clock), else the current unix time."""
    return time.time() if now is None else now


def marks(values: Iterable) -> str:
    """``?, ?, ?``: one parameter mark per value, for ``IN (...)``."""
    return ", ".join("?" for _ in values)


@dataclass(frozen=True)
class Shards:
    """The gateway shards one front-end process serves: ``ids`` of ``count``. A job belongs to the shard of
    its guild, ``(guild_id >> 22) % count`` (Discord's rule); a job from no guild (a DM) to shard 0.
    Several bot processes on one store each watch and deliver only the jobs of their own shards."""

    ids: tuple[int, ...]
    count: int

    def owns(self, guild_id: int | None) -> bool:
        return ((guild_id or 0) >> 22) % self.count in self.ids

    def where(self) -> tuple[str, list[int]]:
        """``AND ...`` for a query on ``jobs``, and its arguments (64-bit integer arithmetic on both backends)."""
        return f"AND (COALESCE(guild_id, 0) >> 22) % ? IN ({marks(self.ids)})", [self.count, *self.ids]


def of_shards(shards: Shards | None) -> tuple[str, list[int]]:
    """:meth:`Shards.where`, or nothing for every shard (``None``)."""
    return shards.where() if shards is not None else ("", [])


class JobReads:
    """The read queries; ``self._db`` is an ``engine.store.db`` database (rows readable by column name)."""

    async def _fetch_job(self, db, sql: str, args: Iterable = ()) -> Job | None:
        rows = await db.execute_fetchall(sql, tuple(args))
        return Job.from_row(rows[0]) if rows else None

    async def _fetch_jobs(self, sql: str, args: Iterable = ()) -> list[Job]:
        return [Job.from_row(row) for row in await self._db.execute_fetchall(sql, tuple(args))]

    # -- jobs -------------------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job | None:
        return await self._fetch_job(self._db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def find_by_post(self, post_id: int) -> Job | None:
        """The job whose progress or result post this is."""
        return await self._fetch_job(
            self._db,
            """SELECT * FROM jobs WHERE progress_post_id = ? OR result_post_id = ?
               ORDER BY id DESC LIMIT 1""",
            (post_id, post_id),
        )

    async def queue_positions(self, job_ids: Iterable[int]) -> dict[int, int]:
        """Each job's 1-based place in the order ``claim`` takes the queued jobs of its lane; 0 if not queued.

        One query for any number of jobs; every id asked for is in the answer. Exact for one
        claimer taking every size; a ``size``-filtered claim can take a job early.
        """
        ids = list(dict.fromkeys(job_ids))
        positions = dict.fromkeys(ids, 0)
        if ids:
            rows = await self._db.execute_fetchall(
                f"{FAIR_ORDER} SELECT id, position FROM fair_order WHERE id IN ({marks(ids)})", ids
            )
            positions.update((row["id"], row["position"]) for row in rows)
        return positions

    async def next_renders(self, limit: int) -> list[tuple[int, str]]:
        """The first ``limit`` queued render jobs in fair order, as ``(job id, model name)``."""
        rows = await self._db.execute_fetchall(
            f"""{FAIR_ORDER}
                SELECT f.id, j.params FROM fair_order AS f JOIN jobs AS j ON j.id = f.id
                WHERE f.lane = 'render' ORDER BY f.position LIMIT ?""",
            (limit,),
        )
        return [(row["id"], RenderParams.from_dict(json.loads(row["params"])).model) for row in rows]

    async def active_jobs(self, guild_id: int | None = None, *, shards: Shards | None = None) -> list[Job]:
        """Queued and running jobs, oldest first; of one guild, or of the guilds on ``shards``, when given."""
        guild, args = ("AND guild_id = ?", [guild_id]) if guild_id is not None else ("", [])
        on_shards, shard_args = of_shards(shards)
        return await self._fetch_jobs(
            f"SELECT * FROM jobs WHERE status IN ({marks(ACTIVE)}) {guild} {on_shards} ORDER BY created_at, id",
            [*ACTIVE, *args, *shard_args],
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
                WHERE status = 'done' AND user_id = ? AND kind IN ({marks(kinds)}) {guild}
                ORDER BY finished_at DESC, id DESC LIMIT 1""",
            [user_id, *kinds, *args],
        )

    async def finished_before(self, cutoff: float) -> list[Job]:
        """Finished jobs that ended before ``cutoff`` (for retention cleanup), oldest first."""
        return await self._fetch_jobs(
            f"""SELECT * FROM jobs WHERE status IN ({marks(FINISHED)}) AND finished_at < ?
                ORDER BY finished_at, id""",
            [*FINISHED, cutoff],
        )

    async def undelivered(self, *, shards: Shards | None = None) -> list[Job]:
        """Finished jobs with an origin whose outcome has not been posted there yet, oldest first; of the
        guilds on ``shards`` when given.

        The front end records the post it made as ``result_post_id``; until then the job is still
        owed to its origin (after a restart too, and while the process of its shard is away).
        """
        on_shards, shard_args = of_shards(shards)
        return await self._fetch_jobs(
            f"""SELECT * FROM jobs
                WHERE status IN ({marks(FINISHED)}) AND origin_id IS NOT NULL AND result_post_id IS NULL {on_shards}
                ORDER BY finished_at, id""",
            [*FINISHED, *shard_args],
        )

    # -- workers ----------------------------------------------------------------------------------
    async def running_workers(self) -> list[str]:
        """The workers that hold running jobs."""
        rows = await self._db.execute_fetchall(
            "SELECT DISTINCT worker FROM jobs WHERE status = 'running' AND worker IS NOT NULL ORDER BY worker"
        )
        return [row["worker"] for row in rows]

    async def outstanding(self, worker: str, *, renders: bool = True, mux: bool = True) -> int:
        """How many jobs ``worker`` still has to do: those queued in its lanes plus those it runs."""
        kinds = [k for k in RENDER_KINDS if renders] + (["mux"] if mux else [])
        if not kinds:
            return 0
        rows = await self._db.execute_fetchall(
            f"""SELECT COUNT(*) AS n FROM jobs
                WHERE kind IN ({marks(kinds)})
                  AND ((status = 'queued' AND cancel_requested = 0) OR (status = 'running' AND worker = ?))""",
            [*kinds, worker],
        )
        return rows[0]["n"]

    # -- usage and settings -----------------------------------------------------------------------
    async def usage(self, guild_id: int | None, user_id: int, now: float | None = None) -> Usage:
        """What ``user_id`` has used in ``guild_id`` (every kind of job: a mux counts like a render;
        ``guild_id=None``: requests from no guild)."""
        return await self._usage(self._db, guild_id, user_id, now)

    async def _usage(self, db, guild_id: int | None, user_id: int, now: float | None) -> Usage:
        """:meth:`usage` read through ``db``: the store itself, or a transaction (``enqueue``'s check)."""
        day_start = (now_or(now) // DAY) * DAY
        rows = await db.execute_fetchall(
            """SELECT COALESCE(SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END), 0)                   AS renders_today,
                       COALESCE(SUM(CASE WHEN status IN ('queued', 'running') THEN 1 ELSE 0 END), 0) AS queued,
                       MAX(created_at)                                                                AS last_request_at
                FROM jobs
                WHERE guild_id IS NOT DISTINCT FROM ? AND user_id = ?""",
            [day_start, guild_id, user_id],
        )
        row = rows[0]
        return Usage(renders_today=row["renders_today"], queued=row["queued"], last_request_at=row["last_request_at"])

    async def get_settings(self, guild_id: int) -> dict:
        """The settings a guild has stored (a JSON object; empty when it has none)."""
        rows = await self._db.execute_fetchall("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return json.loads(rows[0]["data"]) if rows else {}

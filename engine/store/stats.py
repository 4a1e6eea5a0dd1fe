"""The store's figures for a host watching it: how deep the queue is, how long jobs wait, which
workers are alive and how fast they render, what a guild used today.

:class:`JobStats` is a read-only part of :class:`engine.store.store.JobStore`; the bot's metrics
(``bot.ops``, read at scrape time) and ``/status`` (``bot.cogs.status``) read it. Ages are taken on
the store's clock (the database's on PostgreSQL), so hosts whose clocks differ agree.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from engine.store.jobs import DAY
from engine.store.reads import RENDER_KINDS, marks, now_or

LANE_SQL = "CASE WHEN kind = 'mux' THEN 'mux' ELSE 'render' END"


@dataclass(frozen=True)
class QueueCounts:
    """Queued and running jobs by ``(status, lane)``, and how long the oldest queued one has waited."""

    jobs: dict[tuple[str, str], int]
    oldest_queued_seconds: float  # 0 when nothing is queued


@dataclass(frozen=True)
class WorkerSpeed:
    """A worker seen lately: seconds since its heartbeat, and its mean seconds per frame over recent jobs."""

    name: str
    heartbeat_age: float
    seconds_per_frame: float | None  # None: it finished no render job in the window


@dataclass(frozen=True)
class GuildDay:
    """A guild's render jobs since 00:00 UTC: how many, their frames and how many members asked."""

    renders: int
    frames: int
    members: int


class JobStats:
    """Reads for the ops view; ``self._db`` and ``self._now_sql`` are the store's (``engine.store.store``)."""

    def _clock(self, now: float | None) -> tuple[float | None, str]:
        """The ``?`` argument and SQL of "now": the host's clock on SQLite (or ``now``), the database's on PostgreSQL."""
        when = now if now is not None or self._db.dialect == "postgresql" else now_or(now)
        return when, f"COALESCE(?, {self._now_sql})"

    async def queue_counts(self, now: float | None = None) -> QueueCounts:
        when, clock = self._clock(now)
        rows = await self._db.execute_fetchall(
            f"""SELECT status, {LANE_SQL} AS lane, COUNT(*) AS n,
                       MAX(CASE WHEN status = 'queued' THEN {clock} - created_at END) AS oldest
                FROM jobs WHERE status IN ('queued', 'running') GROUP BY status, lane""",
            (when,),
        )
        jobs = {(status, lane): 0 for status in ("queued", "running") for lane in ("render", "mux")}
        jobs |= {(row["status"], row["lane"]): row["n"] for row in rows}
        oldest = max((row["oldest"] or 0.0 for row in rows), default=0.0)
        return QueueCounts(jobs, max(0.0, oldest))

    async def median_wait(self, window: float = 3600.0, now: float | None = None) -> float | None:
        """The median seconds from request to start of the jobs started in the last ``window`` seconds."""
        when, clock = self._clock(now)
        rows = await self._db.execute_fetchall(
            f"SELECT started_at - created_at AS wait FROM jobs WHERE started_at >= {clock} - ?", (when, window)
        )
        return statistics.median(row["wait"] for row in rows) if rows else None

    async def workers(
        self, seen_within: float = 3600.0, speed_window: float = 3600.0, now: float | None = None
    ) -> list[WorkerSpeed]:
        """Workers whose heartbeat is at most ``seen_within`` seconds old, freshest first, with their
        s/frame over the render jobs they finished in the last ``speed_window`` seconds (the whole
        job: frames, encode and waits for a batch, over its frames)."""
        when, clock = self._clock(now)
        rows = await self._db.execute_fetchall(
            f"""SELECT w.name, {clock} - w.seen_at AS age,
                       (SELECT SUM(j.finished_at - j.started_at) / NULLIF(SUM(j.frames_total), 0) FROM jobs AS j
                        WHERE j.worker = w.name AND j.status = 'done' AND j.kind IN ({marks(RENDER_KINDS)})
                          AND j.finished_at >= {clock} - ?) AS spf
                FROM workers AS w WHERE w.seen_at >= {clock} - ? ORDER BY w.seen_at DESC, w.name""",
            (when, *RENDER_KINDS, when, speed_window, when, seen_within),
        )
        return [WorkerSpeed(row["name"], max(0.0, row["age"]), row["spf"]) for row in rows]

    async def guild_today(self, guild_id: int, now: float | None = None) -> GuildDay:
        """What ``guild_id`` rendered since 00:00 UTC (on this host's clock, as the daily quota counts)."""
        day_start = (now_or(now) // DAY) * DAY
        rows = await self._db.execute_fetchall(
            f"""SELECT COUNT(*) AS renders, COALESCE(SUM(frames_done), 0) AS frames, COUNT(DISTINCT user_id) AS members
                FROM jobs WHERE guild_id = ? AND created_at >= ? AND kind IN ({marks(RENDER_KINDS)})""",
            (guild_id, day_start, *RENDER_KINDS),
        )
        row = rows[0]
        return GuildDay(row["renders"], row["frames"], row["members"])

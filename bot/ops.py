"""The bot's metrics: Discord's answers, interactions, uploads, deliveries and their waits, the event
loop's lag, the gateway latency, and the queue as the store has it (read at scrape time).

The engine's metrics are declared in ``engine.ops.metrics``; these are the bot's, in the same
(default) registry that ``engine.ops.serve`` exposes. Discord's answers are counted by an aiohttp
trace on discord.py's own HTTP session (:func:`discord_trace`, passed as ``http_trace``): every REST
call and interaction callback, with no patch of discord.py. The queue gauges are exported by bot
processes only (so several workers do not multiply them): :class:`QueueGauges` reads
``engine.store.stats`` on the bot's event loop when Prometheus scrapes, at most every
``CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator

import aiohttp
import discord
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.store.jobs import Job
from engine.store.store import JobStore

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # the queue gauges are read from the store at most this often
LAG_INTERVAL = 0.25  # the event loop's lag is sampled this often
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

DISCORD_RESPONSES = Counter(
    "animabot_discord_responses_total",
    "Discord REST answers (interaction callbacks included) by route group and status class (2xx, 4xx, 429, 5xx, error)",
    ["route", "status"],
)
INTERACTIONS_ANSWERED = Counter("animabot_interactions_answered_total", "Interactions given their first answer")
FIRST_ANSWER_SECONDS = Histogram(
    "animabot_interaction_first_answer_seconds",
    "From an interaction's creation (its id) to its first answer accepted by Discord",
    buckets=FAST_BUCKETS,
)
UPLOADS = Counter("animabot_uploads_total", "Videos posted")
UPLOAD_BYTES = Counter("animabot_upload_bytes_total", "Bytes of the videos posted")
JOBS_DELIVERED = Counter("animabot_jobs_delivered_total", "Jobs whose outcome was posted, by status", ["status"])
WAIT_SECONDS = Histogram(
    "animabot_job_wait_seconds", "From request to a worker starting the job (jobs delivered)", buckets=WAIT_BUCKETS
)
END_TO_END_SECONDS = Histogram(
    "animabot_job_end_to_end_seconds", "From request to its outcome posted (jobs delivered)", buckets=WAIT_BUCKETS
)
LOOP_LAG = Histogram(
    "animabot_event_loop_lag_seconds", "How late the bot's event loop ran a timer it was given", buckets=FAST_BUCKETS
)
GATEWAY_LATENCY = Gauge("animabot_gateway_latency_seconds", "Discord gateway heartbeat latency", ["shard"])

# -- Discord's answers ---------------------------------------------------------------------------------
ROUTES = frozenset({"channels", "guilds", "interactions", "webhooks", "applications", "users", "gateway"})
SUBROUTES = frozenset({"messages", "commands", "members", "roles", "channels", "reactions", "threads"})
_CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")


def route_group(path: str) -> str:
    """A bounded label for a REST path: ``channels/messages``, ``interactions``, ``webhooks`` … or ``other``."""
    parts = [part for part in path.split("/") if part and part != "api" and not re.fullmatch(r"v\d+", part)]
    if not parts or parts[0] not in ROUTES:
        return "other"
    if parts[0] in ("interactions", "webhooks"):  # ids and tokens follow: nothing bounded to add
        return parts[0]
    sub = next((part for part in parts[1:] if part in SUBROUTES), None)
    return f"{parts[0]}/{sub}" if sub else parts[0]


def status_class(status: int) -> str:
    return "429" if status == 429 else f"{status // 100}xx"


async def _on_request_end(session, context, params: aiohttp.TraceRequestEndParams) -> None:
    path = params.url.path
    status = params.response.status
    DISCORD_RESPONSES.labels(route_group(path), status_class(status)).inc()
    callback = _CALLBACK.search(path)
    if callback and status < 300:  # an interaction's one callback: its first answer
        INTERACTIONS_ANSWERED.inc()
        created = discord.utils.snowflake_time(int(callback.group(1))).timestamp()
        FIRST_ANSWER_SECONDS.observe(max(0.0, time.time() - created))


async def _on_request_exception(session, context, params: aiohttp.TraceRequestExceptionParams) -> None:
    DISCORD_RESPONSES.labels(route_group(params.url.path), "error").inc()


def discord_trace() -> aiohttp.TraceConfig:
    """The trace discord.py's HTTP session runs (``discord.Client(http_trace=...)``)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    trace.on_request_exception.append(_on_request_exception)
    return trace


# -- deliveries --------------------------------------------------------------------------------------
def upload_posted(size: int) -> None:
    UPLOADS.inc()
    UPLOAD_BYTES.inc(size)


def job_delivered(job: Job) -> None:
    """A job's outcome was posted and recorded (once per job): its wait and its end-to-end time.

    The job's times are the store's (the host's clock on SQLite, the database's on PostgreSQL)."""
    JOBS_DELIVERED.labels(job.status.value).inc()
    if job.started_at is not None:
        WAIT_SECONDS.observe(max(0.0, job.started_at - job.created_at))
    END_TO_END_SECONDS.observe(max(0.0, time.time() - job.created_at))


# -- the queue, read at scrape time ----------------------------------------------------------------------
class QueueGauges(Collector):
    """Queue depth by status and lane, the oldest queued job's age and each worker's heartbeat age,
    read from the store of the bot :meth:`attach`-ed last (none: the families without series)."""

    def __init__(self) -> None:
        self._store: JobStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cached: tuple[float, list] = (0.0, [])

    def attach(self, store: JobStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store, self._loop, self._cached = store, loop, (0.0, [])

    def detach(self, store: JobStore) -> None:
        if self._store is store:
            self._store, self._loop, self._cached = None, None, (0.0, [])

    def describe(self) -> list:
        return list(self._families())

    def collect(self) -> Iterator:
        """On the scrape's thread: the store is read on the bot's loop (which goes on meanwhile)."""
        store, loop = self._store, self._loop
        if store is None or loop is None or loop.is_closed():
            return iter(self._families())
        read_at, cached = self._cached
        if time.monotonic() - read_at > CACHE_SECONDS:
            try:
                read = asyncio.run_coroutine_threadsafe(self._read(store), loop)
                cached = read.result(timeout=CACHE_SECONDS)
                self._cached = (time.monotonic(), cached)
            except Exception as err:  # the store is down: the scrape still answers, without these
                log.warning("queue metrics: the job store could not be read (%s)", err)
                return iter(self._families())
        return iter(cached)

    async def _read(self, store: JobStore) -> list:
        counts = await store.queue_counts()
        workers = await store.workers(seen_within=CACHE_SECONDS + 3 * store.lease_seconds + 3600)
        jobs, oldest, ages, alive = self._families()
        for (status, lane), number in sorted(counts.jobs.items()):
            jobs.add_metric([status, lane], number)
        oldest.add_metric([], counts.oldest_queued_seconds)
        for worker in workers:
            ages.add_metric([worker.name], worker.heartbeat_age)
        alive.add_metric([], sum(worker.heartbeat_age < store.lease_seconds for worker in workers))
        return [jobs, oldest, ages, alive]

    @staticmethod
    def _families() -> tuple:
        return (
            GaugeMetricFamily(
                "animabot_queue_jobs", "Queued and running jobs by status and lane", labels=["status", "lane"]
            ),
            GaugeMetricFamily("animabot_queue_oldest_queued_seconds", "How long the oldest queued job has waited"),
            GaugeMetricFamily(
                "animabot_worker_heartbeat_age_seconds",
                "Seconds since each worker seen in the last hour recorded its heartbeat",
                labels=["worker"],
            ),
            GaugeMetricFamily("animabot_workers_alive", "Workers whose heartbeat is younger than the store's lease"),
        )


QUEUE = QueueGauges()
REGISTRY.register(QUEUE)


class BotOps:
    """What one bot measures while it runs: :meth:`start` in ``setup_hook``, :meth:`stop` at close."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._task: asyncio.Task | None = None

    def start(self, client: discord.Client) -> None:
        QUEUE.attach(self.store, asyncio.get_running_loop())
        self._task = asyncio.create_task(self._sample(client), name="animabot-loop-lag")

    async def stop(self) -> None:
        QUEUE.detach(self.store)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self, client: discord.Client) -> None:
        """The loop's lag (a timer's lateness) and the gateway latency of each shard, every ``LAG_INTERVAL``."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            LOOP_LAG.observe(max(0.0, loop.time() - asked - LAG_INTERVAL))
            for shard, latency in getattr(client, "latencies", None) or [(client.shard_id or 0, client.latency)]:
                if latency == latency and latency != float("inf"):  # nan/inf until the first heartbeat
                    GATEWAY_LATENCY.labels(str(shard)).set(latency)

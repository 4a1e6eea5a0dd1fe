"""The progress watcher: turns what the store says about jobs into Discord messages.

The store is the contract: the runtime may be in this process or in ``animabot worker``, so one
task polls the store (every ``poll_interval``; the in-process runtime's progress queue and the
commands only wake it sooner). Each job with a channel gets a tracker task that

1. posts the job's progress message (or finds it again after a restart: its id is in the store),
2. edits it as the job moves, at most once per ``edit_interval`` per message, the latest state
   winning: queue position, then a bar, frame k/N, ETA and the newest preview frame,
3. when the job finishes, has the :class:`~bot.delivery.results.ResultPoster` post the outcome (the
   MP4 fitted to the upload limit, or the readable error) and record the result message in the
   store, which is what marks the job delivered; then shows the final state on the progress message.

A job is never delivered twice by one process, and a sharded bot run as several processes follows
each job in one of them, the one of its guild's shard (``shards``); after a restart, finished jobs
without a result message are delivered then (the post's nonce makes Discord answer a post made just before the
stop with that message instead of a second one). A post Discord refuses for good (missing
permissions, the channel deleted) is not retried: the job is held back and its member told
(``ResultPoster.hold_and_tell``); held jobs are skipped until ``/deliver`` posts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import ops
from bot.delivery.results import ResultPoster, decorate, is_permanent
from bot.job_buttons import progress_view
from bot.replies import NO_MENTIONS
from bot.text.messages import progress_text
from engine.store.jobs import Job, JobKind, JobStatus
from engine.store.reads import Shards
from engine.store.store import JobStore, StoreUnavailable

if TYPE_CHECKING:
    from engine.runtime.worker import Runtime  # only its progress events; the bot loads it lazily

log = logging.getLogger(__name__)

RETRY_DELAYS = (5.0, 15.0, 60.0)  # delivery retries after unexpected errors, then give up


@dataclass(frozen=True)
class Shown:
    """What a progress message shows now, to skip edits that would change nothing."""

    content: str
    preview: tuple[str, int] | None  # (path, frames done) of the attached preview
    buttons: bool


def read_preview(path: str | None) -> bytes | None:
    """The preview JPEG's bytes, or ``None`` when missing or not a whole JPEG."""
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return whole_jpeg(data)


def whole_jpeg(data: bytes | None) -> bytes | None:
    return data if data and data.startswith(b"\xff\xd8") and data.rstrip(b"\x00").endswith(b"\xff\xd9") else None


async def load_preview(store, ref: str) -> bytes | None:
    """The preview a job row names: a file here (SQLite), or the store's blob (PostgreSQL; always the newest)."""
    if store.blobs.local:
        return await asyncio.to_thread(read_preview, ref)
    return whole_jpeg(await store.blobs.get(ref))


class ProgressWatcher:
    """Polls the store and keeps one :class:`Tracker` per job that has a channel to report to.

    ``poster`` posts each finished job's outcome; ``runtime`` (when it runs in this process) wakes the
    watcher as soon as it has news, rather than at the next poll. With ``shards`` (a sharded bot run as
    several processes) it follows only the jobs of those shards' guilds; the other processes follow theirs.
    """

    def __init__(
        self,
        store: JobStore,
        poster: ResultPoster,
        runtime: Runtime | None = None,
        *,
        shards: Shards | None = None,
        poll_interval: float = 1.0,
        edit_interval: float = 3.0,
    ) -> None:
        self.store = store
        self.poster = poster
        self.runtime = runtime
        self.shards = shards
        self.poll_interval = poll_interval
        self.edit_interval = edit_interval
        self._trackers: dict[int, Tracker] = {}
        self._delivered: set[int] = set()  # finished here (delivered or given up): never again
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._queue: asyncio.Queue | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="animabot-progress"))
        if self.runtime is not None:
            self._queue = self.runtime.subscribe()
            self._tasks.append(asyncio.create_task(self._listen(self._queue), name="animabot-progress-listen"))

    async def stop(self) -> None:
        tasks = self._tasks + [t.task for t in self._trackers.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._trackers.clear()
        if self._queue is not None and self.runtime is not None:
            self.runtime.unsubscribe(self._queue)
            self._queue = None

    def poke(self) -> None:
        """Look at the store now rather than at the next poll."""
        self._wake.set()

    async def _listen(self, queue: asyncio.Queue) -> None:
        while True:
            await queue.get()
            self.poke()

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a locked or closing database must not end the watcher
                log.exception("progress watcher: reading the store failed")
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races the wake-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    # -- one look at the store ----------------------------------------------------------------
    async def tick(self) -> None:
        store = self.store
        undelivered = await store.undelivered(shards=self.shards)
        if undelivered:  # held back (refused for good): they wait for /deliver
            held = await store.held_jobs()
            undelivered = [job for job in undelivered if job.id not in held]
        jobs = await store.active_jobs(shards=self.shards) + undelivered
        positions = await store.queue_positions(job.id for job in jobs if job.status is JobStatus.QUEUED)
        for job in jobs:
            if job.origin_id is None or job.id in self._delivered:
                continue
            position = positions.get(job.id, 0)
            tracker = self._trackers.get(job.id)
            if tracker is None:
                tracker = self._trackers[job.id] = Tracker(self, job, position)
                tracker.task = asyncio.create_task(tracker.run(), name=f"animabot-job-{job.id}")
            else:
                tracker.update(job, position)

    def forget(self, tracker: Tracker) -> None:
        """A tracker has ended: its job is never picked up again by this process."""
        self._delivered.add(tracker.job.id)
        self._trackers.pop(tracker.job.id, None)

    def channel(self, job: Job) -> discord.PartialMessageable:
        return self.poster.channel(job)


class Tracker:
    """One job's progress message and its delivery; the latest store snapshot wins."""

    def __init__(self, watcher: ProgressWatcher, job: Job, position: int) -> None:
        self.watcher = watcher
        self.job = job
        self.position = position
        self.task: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._changed.set()
        self._finished = asyncio.Event()
        self._last_edit = -math.inf
        self._shown: Shown | None = None
        self._edits_broken = False
        self._result_id: int | None = None
        self._posted: discord.Message | None = None  # the outcome's own post (None: it went into the progress message)
        self._recorded = False

    def update(self, job: Job, position: int) -> None:
        if job.progress_post_id is None and self.job.progress_post_id is not None:
            # a snapshot read before this tracker recorded the message it posted
            job = dataclasses.replace(job, progress_post_id=self.job.progress_post_id)
        self.job, self.position = job, position
        self._changed.set()
        if job.status.finished:
            self._finished.set()

    @property
    def store(self) -> JobStore:
        return self.watcher.store

    @property
    def poster(self) -> ResultPoster:
        return self.watcher.poster

    async def run(self) -> None:
        try:
            for delay in (*RETRY_DELAYS, None):
                try:
                    await self._follow()
                    return
                except (discord.HTTPException, OSError, StoreUnavailable) as err:  # the store's: an outage
                    if is_permanent(err):  # retrying won't fix it: hold the job back, tell the member
                        await self.poster.hold_and_tell(self.job, err)
                        return
                    if delay is None:
                        log.error("job %d: giving up on delivering it after repeated errors", self.job.id, exc_info=err)
                        await self.poster.post_apology(self.job)
                        return
                    log.warning("job %d: %s; retrying in %g s", self.job.id, _transient(err), delay)
                    await asyncio.sleep(delay)
                except Exception:
                    log.exception("job %d: progress or delivery failed", self.job.id)
                    await self.poster.post_apology(self.job)
                    return
        finally:
            self.watcher.forget(self)

    async def _follow(self) -> None:
        await self._ensure_message()
        while not self.job.status.finished:
            await self._changed.wait()
            wait = self._last_edit + self.watcher.edit_interval - time.monotonic()
            if wait > 0 and not self.job.status.finished:
                # updates meanwhile replace self.job: the latest wins; a finished job goes at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), wait)
            self._changed.clear()
            if self.job.status.finished:
                break
            await self._edit_progress()
        await self._deliver()

    # -- the progress message -----------------------------------------------------------------
    async def _ensure_message(self) -> None:
        job = self.job
        if job.progress_post_id is not None or job.status.finished:
            return
        content = progress_text(job, self.position)
        try:
            message = await self.watcher.channel(job).send(
                content, view=progress_view(job.id), allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException as err:
            # progress is best effort: the outcome is still posted (as a new message) when the job ends
            log.warning("job %d: could not post its progress message (%s); posting only the outcome", job.id, err)
            self._edits_broken = True
            return
        self._last_edit = time.monotonic()
        self._shown = Shown(content, None, True)
        self.job = dataclasses.replace(job, progress_post_id=message.id)  # a retry after a failed write edits it
        await self.store.set_posts(job.id, progress_post_id=message.id)
        self.job = await self.store.get(job.id) or self.job
        log.info("job %d: progress message %d posted", job.id, message.id)

    def _wanted(self, job: Job) -> Shown:
        preview = None
        if job.status is JobStatus.RUNNING and job.preview_path and job.frames_done > 0:
            preview = (job.preview_path, job.frames_done)
        return Shown(progress_text(job, self.position), preview, not job.status.finished)

    async def _edit_progress(self) -> None:
        job = self.job
        if job.progress_post_id is None or self._edits_broken:
            return
        wanted = self._wanted(job)
        if wanted == self._shown:
            return
        kwargs: dict = {}
        # _shown is None for a message found again after a restart: what it shows is unknown
        if self._shown is None or wanted.preview != self._shown.preview:
            data = await load_preview(self.store, wanted.preview[0]) if wanted.preview else None
            if data is not None:
                kwargs["attachments"] = [discord.File(io.BytesIO(data), filename="preview.jpg")]
            elif wanted.preview is not None and self._shown is not None:  # unreadable: keep the last one
                wanted = dataclasses.replace(wanted, preview=self._shown.preview)
            else:  # no preview (a finished job, or an unreadable one after a restart): drop any old one
                kwargs["attachments"] = []
                wanted = dataclasses.replace(wanted, preview=None)
        message = self.watcher.channel(job).get_partial_message(job.progress_post_id)
        try:
            await message.edit(
                content=wanted.content,
                view=progress_view(job.id) if wanted.buttons else None,
                allowed_mentions=NO_MENTIONS,
                **kwargs,
            )
        except discord.NotFound:
            log.info("job %d: progress message %d is gone; not editing it", job.id, job.progress_post_id)
            self._edits_broken = True
            return
        except discord.Forbidden:
            log.warning("job %d: may not edit progress message %d", job.id, job.progress_post_id)
            self._edits_broken = True
            return
        except discord.HTTPException as err:
            # skipped, not retried: the next change (or the final edit) shows the latest state
            log.warning("job %d: editing progress message %d failed (%s)", job.id, job.progress_post_id, err)
            self._last_edit = time.monotonic()
            return
        self._last_edit = time.monotonic()
        self._shown = wanted

    async def _final_edit(self) -> None:
        """The finished state on the progress message, still at most one edit per interval."""
        wait = self._last_edit + self.watcher.edit_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await self._edit_progress()

    # -- delivery -----------------------------------------------------------------------------
    async def _deliver(self) -> None:
        """Post the outcome once and record it (that marks the job delivered), then tidy up. A retry
        (the store was unreachable to record it, say) records the post already made."""
        job = self.job
        if self._result_id is None:
            progress_shown = job.progress_post_id is not None and not self._edits_broken
            self._posted = await self.poster.post_outcome(job, progress_shown=progress_shown)
            self._result_id = self._posted.id if self._posted is not None else job.progress_post_id
        if not self._recorded:
            await self.poster.record_result(job.id, self._result_id)  # first: nothing may fail before it
            self._recorded = True
            ops.job_delivered(job)
            log.info("job %d: %s, delivered as message %d", job.id, job.status.value, self._result_id)
            if self._posted is not None:
                await decorate(job, self._posted)
            if job.kind is JobKind.MUX and job.audio_path:
                self.poster.remove_upload(job.audio_path)
        await self._final_edit()


def _transient(err: BaseException) -> str:
    """What went wrong, for the log line of a delivery that is tried again."""
    return "the job store is unreachable" if isinstance(err, StoreUnavailable) else f"Discord error ({err})"

"""The engine runtime: one per process, it serves the job store with this host's GPU and CPU.

The runtime runs the loops: renders (claiming and rendering batches, see ``engine.runtime.batcher``),
mux jobs (CPU work on their own thread, never waiting behind renders), liveness (a heartbeat, and
re-queuing the jobs of workers that died) and retention (removing old jobs' files). Progress goes
into the store (the contract with a bot in another process) and to in-process subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

from engine.config import Config
from engine.errors import DISK_FULL, UserError
from engine.files import result_filename
from engine.ops import metrics
from engine.request.safety import SPOILER_PREFIX
from engine.runtime.batcher import Batcher
from engine.runtime.in_flight import BatchJob, Progress, describe_failure, job_dir
from engine.store.blobs import job_prefix
from engine.store.db import backoff, until_reachable
from engine.store.jobs import DAY, Job, JobStatus
from engine.store.store import JobStore, LeaseLost, StoreUnavailable

__all__ = ["Progress", "Runtime", "describe_failure", "job_dir", "process_gone"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # the fallback: another process may have queued a job without telling us
CLEANUP_EVERY_SECONDS = 3600
HEARTBEAT_SECONDS = 5.0  # at most; a third of the store's lease when that is shorter
RECOVERED_SECONDS = 60.0  # a loop that ran this long before failing starts its backoff afresh
MAX_ATTEMPTS = 3  # a job whose worker died this many times before saving a frame fails instead


def process_gone(worker: str) -> bool:
    """Whether ``worker`` (``host:pid``) was a process on this host that no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Runtime:
    """Serves the job store from this process: start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, config: Config, store: JobStore, *, worker: str | None = None, device: str | None = None):
        self.config = config
        self.store = store
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.device = device or config.engine.device
        self._gpu = ThreadPoolExecutor(1, thread_name_prefix="animabot-gpu")
        self._cpu = ThreadPoolExecutor(1, thread_name_prefix="animabot-cpu")
        self._wake = asyncio.Event()  # a job was queued or a cancel requested
        self._changed = asyncio.Event()  # a loop went idle, a job ended or an encode finished (for drain)
        self._subscribers: set[asyncio.Queue] = set()
        self._tasks: list[asyncio.Task] = []
        self._muxing = 0  # mux jobs being run on the CPU thread
        self.serving: set[int] = set()  # jobs claimed here whose end is not written yet: the heartbeat renews these
        self._listener = lambda payload: self._wake.set()  # the store says jobs changed (any host)
        self.batcher = Batcher(
            config, store, self.worker, device=self.device, gpu=self._gpu, cpu=self._cpu,
            finish=self._finish, publish=self._publish, on_change=self._changed.set, serving=self.serving,
        )  # fmt: skip

    @property
    def components(self):
        """The loaded models (``engine.render.weights.models.Components``); ``None`` before :meth:`start`."""
        return self.batcher.gpu_models.components

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Re-queue what a dead process left running, load the models, then serve."""
        await self.store.heartbeat(self.worker, jobs=self.serving)
        await self._requeue_orphans()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._gpu, self.batcher.gpu_models.load)
        self.store.add_listener(self._listener)
        self._tasks = [
            asyncio.create_task(self._resilient(self._render_loop), name="animabot-render"),
            asyncio.create_task(self._resilient(self._mux_loop), name="animabot-mux"),
            asyncio.create_task(self._resilient(self._cleanup_loop), name="animabot-cleanup"),
            asyncio.create_task(self._resilient(self._heartbeat_loop), name="animabot-heartbeat"),
        ]
        log.info("runtime %s serving on %s", self.worker, self.components.device)

    async def stop(self) -> None:
        """Stop serving; jobs in flight go back to the queue and resume from their saved frames."""
        self.batcher.cancel_all()
        self.store.remove_listener(self._listener)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.batcher.close()  # short: the frames being recorded and the videos being encoded finish
        try:
            ids = await asyncio.shield(self.store.requeue_running(worker=self.worker))
        except StoreUnavailable:  # the leases expire instead, and another worker resumes the jobs
            ids = []
        self.batcher.active.clear()
        self.serving.clear()
        self._gpu.shutdown(wait=True)
        self._cpu.shutdown(wait=True)
        if ids:
            log.info("runtime stopped; jobs %s back in the queue", ids)

    def notify(self) -> None:
        """Wake the loops now (a job was queued or a cancel requested)."""
        self._wake.set()

    async def drain(self) -> None:
        """Return once nothing is left to do: no job is queued, none of this runtime's jobs is
        running, no encode or mux is in flight and no batch size is waiting to be compiled.

        It waits on the loops' events (a loop found nothing to claim, a job ended, an encode
        finished), not on a clock. Jobs queued meanwhile are waited for too. Call it only while
        the runtime serves: a stopped runtime never drains.
        """
        self.notify()
        while True:
            self._changed.clear()
            if not self._busy() and await self.store.outstanding(self.worker) == 0 and not self._busy():
                return
            await self._changed.wait()

    def _busy(self) -> bool:
        return self.batcher.busy or self.batcher.gpu_models.wants_warm_up or self._muxing > 0

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    # -- publishing ---------------------------------------------------------------------------
    def _publish(self, progress: Progress) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # the latest state wins
            queue.put_nowait(progress)

    async def _finish(self, job: Job, status: JobStatus, *, result: Path | None = None, error: str | None = None):
        """The final write of a job (shielded, fenced by the claim's token) and its announcement.

        The result goes into the store's blobs with it (on PostgreSQL; on SQLite it is already
        there, in the data folder). ``None`` when the lease was lost: another worker has the job.
        """
        files, result_path = None, str(result) if result else None
        if status is JobStatus.FAILED and error == DISK_FULL:  # its partial files go first: room for this write
            await asyncio.to_thread(shutil.rmtree, job_dir(self.config, job.id), True)
            log.info("job %d: the disk is full; its partial files are removed", job.id)
        if result is not None and not self.store.blobs.local:
            key = f"{job_prefix(job.id)}{result.name}"
            files, result_path = {key: result}, self.store.blobs.ref(key)
        try:  # the outcome is kept until the store takes it: a job must not stay running for ever
            done = await until_reachable(
                lambda: self.store.finish(  # shielded there: cancelling this does not lose the write
                    job.id, status, result_path=result_path, error=error, token=job.lease_token, files=files
                ),
                f"mark job {job.id} {status.value}",
            )
        except LeaseLost:
            log.warning("job %d: lost its lease (claimed again elsewhere); not marking it %s", job.id, status.value)
            self._changed.set()
            return None
        finally:
            self.serving.discard(job.id)  # ended, or another worker's: the heartbeat no longer renews it
        metrics.JOBS_FINISHED.labels(status.value).inc()
        self._publish(
            Progress(
                job.id, status, done.frames_done, done.frames_total, 0.0, done.preview_path, done.result_path, error
            )
        )
        self._changed.set()
        return done

    async def _wait(self) -> None:
        """Until notified, or ``POLL_SECONDS`` (another process may have queued a job)."""
        self._changed.set()  # the caller found nothing to do
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation that
        # stop() sends when it races with the timeout or the wake-up, and stop() then waits forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_SECONDS):
                await self._wake.wait()
        self._wake.clear()

    async def _resilient(self, loop_body) -> None:
        """Run a loop; when it stops on an error, wait (backing off) and start it again. A loop that
        ended silently would leave this worker renewing the leases of jobs it no longer serves."""
        failures, name = 0, loop_body.__name__
        while True:
            started = time.monotonic()
            try:
                await loop_body()
                return
            except StoreUnavailable:
                error = None
            except Exception as err:
                error = err
            if time.monotonic() - started > RECOVERED_SECONDS:  # it had been running: a new incident
                failures = 0
            delay = backoff(failures)
            failures += 1
            if error is None:
                log.warning("%s: the job store is unreachable; trying again in %g s", name, delay)
            else:
                log.error("%s stopped on an error; starting it again in %g s", name, delay, exc_info=error)
            await asyncio.sleep(delay)

    # -- renders ------------------------------------------------------------------------------
    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.batcher.active:
                await self.batcher.fill()  # a running batch fills itself while the GPU renders
            if self.batcher.active:
                await self.batcher.run_round()
            elif self.batcher.gpu_models.wants_warm_up:  # idle: compile the next batch size
                await loop.run_in_executor(self._gpu, self.batcher.gpu_models.warm_next)
            else:
                await self._wait()

    # -- mux ----------------------------------------------------------------------------------
    async def _mux_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self.store.claim(self.worker, renders=False)
            if job is None:
                await self._wait()
                continue
            self.serving.add(job.id)
            self._muxing += 1
            try:  # claimed, so it must not be dropped here: waits out an outage
                inputs = functools.partial(self._mux_inputs, job)
                try:  # a full disk, say, where the inputs are cached: the job fails with the reason
                    parent, video, audio = await until_reachable(inputs, f"fetch mux job {job.id}'s files")
                    spoiler = await self._check_mux(job, parent, video)  # Unsafe: stopped by the policy
                    out = await loop.run_in_executor(self._cpu, self._mux, job, parent, video, audio, spoiler)
                except Exception as err:
                    if not isinstance(err, UserError):
                        log.exception("job %d: mux failed", job.id)
                    await self._finish(job, JobStatus.FAILED, error=describe_failure(err))
                    continue
                await self._finish(job, JobStatus.DONE, result=out)
            finally:
                self._muxing -= 1

    async def _mux_inputs(self, job: Job) -> tuple[Job | None, Path | None, Path | None]:
        """The job's parent, the parent's video and the audio, fetched from the store's blobs."""
        parent = await self.store.get(job.parent_id) if job.parent_id is not None else None
        video = await self.store.blobs.fetch(parent.result_path) if parent is not None else None
        return parent, video, await self.store.blobs.fetch(job.audio_path)

    async def _check_mux(self, job: Job, parent: Job | None, video: Path | None) -> bool:
        """The mode where the mux job was asked for (``job.safety``) on the video it posts again, wherever
        that video was made: a video flagged when rendered (a spoiler) counts as flagged, else the
        checker looks at its frames (``FrameChecks.check_video``: frame 0, every k-th and the last).
        Raises ``Unsafe`` under ``block``; returns whether the result is a spoiler."""
        if job.safety == "off" or parent is None or video is None:
            return False
        checks, active = self.batcher.checks, BatchJob(job, job_dir(self.config, job.id))
        what = f"job {parent.id}'s video"
        if PurePath(parent.result_path or "").name.startswith(SPOILER_PREFIX):
            checks.flag(active, f"{what} (flagged when it was rendered)")
        elif checks.applies(job):
            from engine.video.read import decode_frames

            loop = asyncio.get_running_loop()
            frames = await loop.run_in_executor(self._cpu, decode_frames, video)
            await loop.run_in_executor(self._gpu, checks.check_video, active, frames, what)  # beside the rounds
        if active.error is not None:
            raise active.error
        return active.spoiler

    def _mux(self, job: Job, parent: Job | None, video: Path | None, audio: Path | None, spoiler: bool) -> Path:
        from engine.video.edit import mux_audio

        if parent is None or video is None:
            raise UserError(f"Job {job.parent_id} has no finished video to put the audio on; pick one that is done.")
        out = job_dir(self.config, job.id) / result_filename(parent.id, parent.seed, audio=True)
        if spoiler:  # flagged under the spoiler policy: the front end posts it hidden
            out = out.with_name(SPOILER_PREFIX + out.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        return mux_audio(video, audio if audio is not None else job.audio_path, out)

    # -- liveness -----------------------------------------------------------------------------
    async def _requeue_orphans(self) -> None:
        """Jobs of workers that died (a gone process here, or a lease expired) resume, on any host."""
        dead = [worker for worker in await self.store.running_workers() if process_gone(worker)]
        requeued = await self.store.requeue_running(
            stale_after=self.store.lease_seconds, dead=dead, max_attempts=MAX_ATTEMPTS
        )
        if requeued:
            log.info("re-queued %d job(s) of stopped workers: %s", len(requeued), requeued)
            self.notify()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(min(HEARTBEAT_SECONDS, self.store.lease_seconds / 3))
            await self.store.heartbeat(self.worker, jobs=self.serving)
            await self._requeue_orphans()

    # -- retention ----------------------------------------------------------------------------
    async def _cleanup_loop(self) -> None:
        while True:
            cutoff = time.time() - self.config.engine.retention_days * DAY
            for job in await self.store.finished_before(cutoff):
                path = job_dir(self.config, job.id)
                if not self.store.blobs.local:  # the database's copies (every host's cache goes with its own clean-up)
                    await self.store.blobs.delete(job_prefix(job.id))
                    if job.audio_path and not Path(job.audio_path).is_absolute():
                        await self.store.blobs.delete(job.audio_path)
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    log.info("job %d files removed after %g days", job.id, self.config.engine.retention_days)
            await self.store.remove_old_pictures(self.config.engine.retention_days * DAY)
            await asyncio.sleep(CLEANUP_EVERY_SECONDS)

"""The engine runtime: one per process, it owns the GPU and serves the job store.

Renders run in a single-thread executor (the GPU thread), so the event loop stays free for the bot.
Jobs of one size share the GPU: up to ``max_batch`` of them are claimed, and each round renders the
next frame of every one with their denoising steps batched (jobs join and leave between frames).
Mux jobs are CPU work on their own thread and never wait behind renders. Progress goes into the
store (the contract with a bot in another process) and to in-process subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import Config
from engine.errors import UserError
from engine.queue.jobs import Job, JobStatus
from engine.queue.store import JobStore

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
CLEANUP_EVERY_SECONDS = 3600
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0  # a worker not heard from for this long is dead: its jobs go back to the queue
MAX_ATTEMPTS = 3  # a job whose worker died this many times fails instead of going back again


@dataclass(frozen=True)
class Progress:
    job_id: int
    status: JobStatus
    frames_done: int
    frames_total: int
    eta_seconds: float | None = None
    preview_path: str | None = None
    result_path: str | None = None
    error: str | None = None


@dataclass(eq=False)
class _Active:
    """A render job held by this runtime: its frame chain lives on the GPU thread."""

    job: Job
    work_dir: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    chain: object = None  # engine.render.chain.FrameChain, built on the GPU thread
    claimed_at: float = field(default_factory=time.monotonic)
    render_seconds: float = 0.0
    rendered: int = 0
    timed_out: bool = False
    error: BaseException | None = None  # set when this job alone cannot be rendered

    @property
    def size(self) -> tuple[int, int]:
        return self.job.params.width, self.job.params.height


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


def job_dir(config: Config, job_id: int) -> Path:
    return config.jobs_dir / str(job_id)


def result_name(job: Job) -> str:
    return f"animabot-{job.id}-seed{job.seed}.mp4" if job.seed is not None else f"animabot-{job.id}-mux.mp4"


def describe_failure(err: BaseException) -> str:
    """The sentence a user reads for a failed job."""
    if isinstance(err, UserError):
        return str(err)
    text = str(err)
    if "out of memory" in text.lower():
        return "The GPU ran out of memory; try a smaller size or fewer frames, or retry when the queue is quieter."
    if "ffmpeg" in text.lower():
        return "Encoding the video failed; please try again (the host can find details in the log)."
    return "The render failed unexpectedly; the host can find details in the log."


class Runtime:
    def __init__(self, config: Config, store: JobStore, *, worker: str | None = None, device: str | None = None):
        self.config = config
        self.store = store
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.device = device or config.engine.device
        self.components = None
        self._gpu = ThreadPoolExecutor(1, thread_name_prefix="animabot-gpu")
        self._cpu = ThreadPoolExecutor(1, thread_name_prefix="animabot-cpu")
        self._wake = asyncio.Event()
        self._subscribers: set[asyncio.Queue] = set()
        self._active: dict[int, _Active] = {}
        self._tasks: list[asyncio.Task] = []
        self._predict = None  # engine.render.accel.CompiledStep on CUDA when compile is on
        self._to_warm: list[int] = [2]  # batch rows still to compile: one job first, then a full batch
        self._encodes: set[asyncio.Task] = set()  # videos being encoded (their jobs left the batch)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Re-queue what a dead process left running, load the models, then serve."""
        await self.store.heartbeat(self.worker)
        await self._requeue_orphans()
        loop = asyncio.get_running_loop()
        self.components = await loop.run_in_executor(self._gpu, self._load_components)
        self._tasks = [
            asyncio.create_task(self._render_loop(), name="animabot-render"),
            asyncio.create_task(self._mux_loop(), name="animabot-mux"),
            asyncio.create_task(self._cleanup_loop(), name="animabot-cleanup"),
            asyncio.create_task(self._heartbeat_loop(), name="animabot-heartbeat"),
        ]
        log.info("runtime %s serving on %s", self.worker, self.components.device)

    async def stop(self) -> None:
        """Stop serving; jobs in flight go back to the queue and resume from their saved frames."""
        for active in self._active.values():
            active.cancel.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*self._encodes, return_exceptions=True)  # short: let them finish
        ids = await asyncio.shield(self.store.requeue_running(worker=self.worker))
        self._active.clear()
        self._gpu.shutdown(wait=True)
        self._cpu.shutdown(wait=True)
        if ids:
            log.info("runtime stopped; jobs %s back in the queue", ids)

    def notify(self) -> None:
        """Wake the loops now (a job was queued or a cancel requested)."""
        self._wake.set()

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
        done = await asyncio.shield(
            self.store.finish(job.id, status, result_path=str(result) if result else None, error=error)
        )
        self._publish(
            Progress(job.id, status, done.frames_done, done.frames_total, 0.0, done.preview_path, done.result_path, error)
        )
        return done

    async def _wait(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        except TimeoutError:
            pass
        self._wake.clear()

    # -- renders ------------------------------------------------------------------------------
    def _load_components(self):
        """GPU thread: load the models once, apply the speed-ups, compile and warm up on CUDA."""
        from engine.render import accel
        from engine.render.models import load_components

        components = load_components(self.config.engine, device=self.device)
        accel.prepare(components)
        if self.config.engine.compile and components.device.type == "cuda":
            self._predict = accel.CompiledStep(components, cache_dir=self.config.data_dir / "compile-cache")
            self._warm_next()  # one job's size now; a full batch's when the runtime is first idle
            full = accel.bucket(2 * max(1, self.config.engine.max_batch))
            if full not in self._predict.warmed:
                self._to_warm.append(full)
        return components

    def _warm_next(self) -> None:
        """GPU thread: compile the next pending batch size at the default render size."""
        render, rows = self.config.render, self._to_warm.pop(0)
        seconds = self._predict.warm_up(render.width, render.height, (rows,))
        log.info("compiled the UNet+ControlNet step for %s at %d rows in %.0f s", render.size, rows, seconds)

    async def _claim_renders(self) -> None:
        """Fill the batch: any size when idle, then more jobs of the size being rendered."""
        while len(self._active) < max(1, self.config.engine.max_batch):
            size = next(iter(self._active.values())).size if self._active else None
            job = await self.store.claim(self.worker, mux=False, size=size)
            if job is None:
                return
            self._active[job.id] = _Active(job=job, work_dir=job_dir(self.config, job.id) / "frames")
            log.info("job %d joins the batch (%s, %d/%d frames done)", job.id, job.params.size, job.frames_done, job.frames_total)

    async def _check_cancels(self) -> None:
        limit = self.config.engine.job_timeout_seconds
        for active in self._active.values():
            job = await self.store.get(active.job.id)
            if job is None or job.cancel_requested:
                active.cancel.set()
            elif time.monotonic() - active.claimed_at > limit:
                active.timed_out = True
                active.cancel.set()

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._claim_renders()
            if not self._active:
                if self._predict is not None and self._to_warm:  # idle: compile the next batch size
                    await loop.run_in_executor(self._gpu, self._warm_next)
                    continue
                await self._wait()
                continue
            await self._check_cancels()
            batch = list(self._active.values())
            started = time.monotonic()
            try:
                frames = await loop.run_in_executor(self._gpu, self._render_round, batch)
            except Exception as err:  # noqa: BLE001 - one bad round fails its jobs, not the runtime
                ids = [a.job.id for a in batch]
                log.exception("render round of jobs %s failed", ids)
                for active in batch:
                    self._active.pop(active.job.id, None)
                    await self._finish(active.job, JobStatus.FAILED, error=describe_failure(err))
                continue
            elapsed = time.monotonic() - started
            for active, frame in zip(batch, frames):
                await self._after_frame(active, frame, elapsed)

    def _render_round(self, batch: list[_Active]) -> list[np.ndarray | None]:
        """GPU thread: build missing chains, render one frame of each job, save frames and previews."""
        from engine.render.chain import FrameChain, render_round
        from engine.render.frames import load_frames, save_frame
        from engine.video.preview import preview_jpeg

        for active in batch:
            if active.chain is None and not active.cancel.is_set():
                try:
                    params = active.job.params.validate()
                    saved = load_frames(active.work_dir, params.frames)
                    active.chain = FrameChain(self.components, params, frames=saved, cancel=active.cancel)
                except Exception as err:  # noqa: BLE001 - fails this job, not the batch
                    active.error = err
        live = [a for a in batch if a.chain is not None and not a.cancel.is_set() and not a.chain.done]
        frames = render_round(self.components, [a.chain for a in live], predict=self._predict) if live else []
        by_job = dict(zip((a.job.id for a in live), frames))
        for active in live:
            frame = by_job[active.job.id]
            if frame is None:
                continue
            index = len(active.chain.frames) - 1
            save_frame(active.work_dir, index, frame)
            preview = active.work_dir.parent / "preview.jpg"
            tmp = preview.with_suffix(".tmp")
            tmp.write_bytes(preview_jpeg(frame))
            os.replace(tmp, preview)
            log.info("job %d frame %d saved", active.job.id, index)
        return [by_job.get(a.job.id) for a in batch]

    async def _after_frame(self, active: _Active, frame: np.ndarray | None, elapsed: float) -> None:
        job = active.job
        if active.error is not None:
            self._active.pop(job.id, None)
            if not isinstance(active.error, UserError):
                log.error("job %d could not start", job.id, exc_info=active.error)
            await self._finish(job, JobStatus.FAILED, error=describe_failure(active.error))
            return
        if active.cancel.is_set() or active.chain is None:
            self._active.pop(job.id, None)
            if active.timed_out:
                limit = self.config.engine.job_timeout_seconds
                await self._finish(job, JobStatus.FAILED, error=f"The render took longer than the {limit:g} s limit; ask for fewer frames or steps.")
            else:
                await self._finish(job, JobStatus.CANCELLED)
            return
        if frame is not None:
            active.rendered += 1
            active.render_seconds += elapsed
            done = len(active.chain.frames)
            eta = active.render_seconds / active.rendered * (job.frames_total - done)
            preview = str(active.work_dir.parent / "preview.jpg")
            await self.store.update_progress(job.id, done, preview_path=preview, eta_seconds=eta)
            self._publish(Progress(job.id, JobStatus.RUNNING, done, job.frames_total, eta, preview))
        if active.chain.done:  # also a job that resumed with every frame already on disk
            self._active.pop(job.id, None)
            encode = asyncio.create_task(self._encode(active), name=f"animabot-encode-{job.id}")
            self._encodes.add(encode)
            encode.add_done_callback(self._encodes.discard)

    async def _encode(self, active: _Active) -> None:
        from engine.video.encode import encode_frames

        job = active.job
        out = active.work_dir.parent / result_name(job)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._cpu, encode_frames, active.chain.frames, out, job.params.fps)
        except Exception as err:  # noqa: BLE001
            log.exception("job %d: encoding failed", job.id)
            await self._finish(job, JobStatus.FAILED, error=describe_failure(err))
            return
        await self._finish(job, JobStatus.DONE, result=out)

    # -- mux ----------------------------------------------------------------------------------
    async def _mux_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self.store.claim(self.worker, renders=False)
            if job is None:
                await self._wait()
                continue
            parent = await self.store.get(job.parent_id) if job.parent_id is not None else None
            try:
                out = await loop.run_in_executor(self._cpu, self._mux, job, parent)
            except Exception as err:  # noqa: BLE001 - a bad upload fails its job only
                if not isinstance(err, UserError):
                    log.exception("job %d: mux failed", job.id)
                await self._finish(job, JobStatus.FAILED, error=describe_failure(err))
                continue
            await self._finish(job, JobStatus.DONE, result=out)

    def _mux(self, job: Job, parent: Job | None) -> Path:
        from engine.video.edit import mux_audio

        if parent is None or parent.result_path is None or not Path(parent.result_path).exists():
            raise UserError(f"Job {job.parent_id} has no finished video to put the audio on; pick one that is done.")
        out = job_dir(self.config, job.id) / f"animabot-{parent.id}-seed{parent.seed}-audio.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        return mux_audio(parent.result_path, job.audio_path, out)

    # -- liveness -----------------------------------------------------------------------------
    async def _requeue_orphans(self) -> None:
        """Jobs of workers that died (a gone process here, or silent for STALE_SECONDS) resume."""
        dead = [worker for worker in await self.store.running_workers() if process_gone(worker)]
        requeued = await self.store.requeue_running(stale_after=STALE_SECONDS, dead=dead, max_attempts=MAX_ATTEMPTS)
        if requeued:
            log.info("re-queued %d job(s) of stopped workers: %s", len(requeued), requeued)
            self.notify()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.store.heartbeat(self.worker)
            await self._requeue_orphans()

    # -- retention ----------------------------------------------------------------------------
    async def _cleanup_loop(self) -> None:
        while True:
            cutoff = time.time() - self.config.engine.retention_days * 86400
            for job in await self.store.finished_before(cutoff):
                path = job_dir(self.config, job.id)
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    log.info("job %d files removed after %g days", job.id, self.config.engine.retention_days)
            await asyncio.sleep(CLEANUP_EVERY_SECONDS)

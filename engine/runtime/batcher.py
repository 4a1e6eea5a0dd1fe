"""The GPU round: the render jobs one runtime holds, rendered a frame at a time in one batch.

Jobs of one batch key share the GPU: up to ``max_batch`` of them are claimed, and each round renders
the next frame of every one with their denoising steps batched (jobs join and leave between frames).
Each job is a ``JobRender`` (``engine.runtime.render_job``, the render path ``animabot render``
takes too): built on the GPU thread when the job joins, rendered with the others by ``next_frames``,
and written to its file (loop, smoothing, format, recipe) by its ``finish`` on the CPU thread while
the batch goes on. The models, the compiled step and every round run on the runtime's GPU thread (a
single-thread executor), so the event loop stays free. A round's new frames are written (PNG and
preview JPEG, on the batcher's file threads) and recorded (the store, the runtime's subscribers)
while the next round renders: each job's records go in frame order, a frame is on disk before the
store counts it, and a job ends only after its last record.

Jobs of different models, LoRA sets or control types (canny, depth, pose) never share a batch: they
are part of ``RenderParams.batch_key()``, so a round runs one model with one LoRA set and one
control's ControlNet and annotator. The compiled step is built for the canny ControlNet; depth and
pose rounds run eagerly. A job that starts from a picture gets it from ``engine.store.pictures`` by
its ``image_key`` when its ``JobRender`` is built (so a restart resumes it).

A bad job fails alone: one whose ``JobRender`` cannot be built (its params are checked there) fails
before its first round, and when a shared GPU call raises, its jobs are retried one at a time and
only those that raise alone fail (``Batcher._next_frames``; out of memory shrinks the rounds).

This, ``engine.runtime.render_job`` and ``engine.runtime.gpu_models`` (the models, loaded and
compiled) are the places that hand work to ``engine.render``; they import it (and so torch) only
inside the functions that run on the GPU thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from engine.config import Config
from engine.errors import OutOfMemory, UserError
from engine.files import result_filename
from engine.ops import metrics
from engine.request.safety import SPOILER_PREFIX
from engine.runtime import model_order
from engine.runtime.frame_checks import FrameChecks, Unsafe, discard
from engine.runtime.gpu_models import GpuModels
from engine.runtime.in_flight import BatchJob, Finish, Progress, describe_failure, job_dir, write_frame
from engine.runtime.render_job import JobRender, coherence_bytes, next_frames, use_weights
from engine.store.blobs import job_prefix
from engine.store.db import until_reachable
from engine.store.jobs import Job, JobStatus
from engine.store.pictures import fetch_picture, load_picture
from engine.store.store import JobStore, LeaseLost, StoreFull, StoreUnavailable

log = logging.getLogger(__name__)

CLOSE_SECONDS = 30.0  # how long a stopping runtime waits for its videos' ends to be recorded


class Batcher:
    """The batch of render jobs one runtime is rendering, and the rounds that render it.

    The runtime's render loop calls :meth:`fill` while the batch is empty, and :meth:`run_round`
    (which fills it further) while :attr:`active` holds jobs. The models are in :attr:`gpu_models`
    (``engine.runtime.gpu_models``).
    """

    def __init__(
        self,
        config: Config,
        store: JobStore,
        worker: str,
        *,
        device: str,
        gpu: Executor,
        cpu: Executor,
        finish: Finish,
        publish: Callable[[Progress], None],
        on_change: Callable[[], None],
        serving: set[int] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.worker = worker
        self._gpu = gpu
        self._cpu = cpu
        self._finish = finish
        self._publish = publish
        self._on_change = on_change  # a job left the batch or an encode ended
        # the jobs claimed here whose end is not written yet (the runtime's, which its heartbeat renews)
        self.serving = serving if serving is not None else set()
        self.catalog = config.catalog  # the models and LoRAs jobs name
        self.gpu_models = GpuModels(config, device=device)  # loaded and compiled on the GPU thread
        self.checks = FrameChecks(config.safety, device=device, dtype=config.engine.dtype)  # the content policy
        self.passed_over: set[int] = set()  # head jobs an empty batch skipped once for a loaded model
        self.active: dict[int, BatchJob] = {}
        # jobs per shared GPU call: halved by an out-of-memory, back to max_batch when the batch empties
        self.fits = self.config.engine.max_batch
        self.encodes: set[asyncio.Task] = set()  # videos being encoded (their jobs left the batch)
        self.records: set[asyncio.Task] = set()  # frames being written and recorded (Batcher._record)
        self._files = ThreadPoolExecutor(4, thread_name_prefix="animabot-files")  # PNG and JPEG writes

    @property
    def busy(self) -> bool:
        """Whether a job is in the batch, or a frame is being recorded or a video encoded."""
        return bool(self.active or self.encodes or self.records)

    def cancel_all(self) -> None:
        for active in self.active.values():
            active.cancel.set()

    async def close(self) -> None:
        """Let the frames being recorded and the videos being encoded finish (both are short). A
        video whose end the store cannot take within ``CLOSE_SECONDS`` (an outage) is left running
        in the store: its lease expires and a worker resumes it."""
        await asyncio.gather(*self.records, return_exceptions=True)
        if self.encodes:
            _, waiting = await asyncio.wait(self.encodes, timeout=CLOSE_SECONDS)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*self.encodes, return_exceptions=True)
        self._files.shutdown(wait=True)

    # -- claiming ---------------------------------------------------------------------------------
    async def fill(self) -> None:
        """Fill the batch: any job when it is empty, then more jobs of the batch key being rendered."""
        if not self.active:
            self.fits = self.config.engine.max_batch  # a fresh batch tries the full size again
        while len(self.active) < self.config.engine.max_batch:
            key = next(iter(self.active.values())).batch_key if self.active else None
            job = await self.store.claim(self.worker, mux=False, batch_key=key, job_id=await self._preferred(key))
            if job is None:
                return
            self.serving.add(job.id)
            active = BatchJob(job=job, work_dir=job_dir(self.config, job.id) / "frames")
            if not self.store.blobs.local:  # claimed, so it must not be dropped here: waits out an outage
                try:
                    await until_reachable(functools.partial(self._fetch_inputs, job), f"fetch job {job.id}'s frames")
                except Exception as err:  # a full disk, say: the job fails with the reason at its round
                    active.error = err
            self.active[job.id] = active
            log.info(
                "job %d joins the batch (%s, %d/%d frames done)",
                job.id, job.params.size, job.frames_done, job.frames_total,
            )  # fmt: skip

    async def _fetch_inputs(self, job: Job) -> None:
        """Resume from the frames the database has, whichever host saved them, and the job's picture."""
        await self.store.blobs.download(f"{job_prefix(job.id)}frames/")
        if job.params.image_key:
            await fetch_picture(self.store, self.config.data_dir, job.params.image_key)

    async def _preferred(self, key: str | None) -> int | None:
        """An empty batch on a runtime with a model loaded: the job ``model_order.pick`` prefers."""
        if key is not None or self.gpu_models.cache is None or len(self.catalog.models) < 2:
            return None
        queue = await self.store.next_renders(model_order.LOOKAHEAD)
        return model_order.pick(queue, self.gpu_models.cache.loaded, self.passed_over)

    async def _check_cancels(self) -> None:
        limit = self.config.engine.job_timeout_seconds
        for active in list(self.active.values()):
            job = await self.store.get(active.job.id)
            if job is not None and job.lease_token != active.job.lease_token:
                self._lost(active)
            elif job is None or job.cancel_requested:
                active.cancel.set()
            elif time.monotonic() - active.claimed_at > limit:
                active.timed_out = True
                active.cancel.set()

    # -- one round --------------------------------------------------------------------------------
    async def run_round(self) -> None:
        """Render the next frame of every job in the batch, then record what each one did.

        While the GPU thread renders, the store is read for cancels, timeouts and lost leases (a set
        cancel event stops a job before its next step) and the batch is filled for the next round,
        so neither leaves the GPU idle between rounds. An unreachable store does not stop the batch:
        frames go on being saved, and the store is brought up to date when it is back.
        """
        batch = list(self.active.values())
        started = time.monotonic()
        rendering = asyncio.get_running_loop().run_in_executor(self._gpu, self._render_round, batch)
        try:
            await self._check_cancels()
            await self.fill()  # jobs claimed now join at the next round
        except asyncio.CancelledError:
            raise  # the runtime is stopping: its jobs go back to the queue and resume from their saved frames
        except StoreUnavailable:  # the batch goes on; the next round reads cancels and claims again
            log.warning("jobs %s: the job store is unreachable; rendering on", list(self.active))
        except BaseException:
            await self._take_round(batch, rendering, started)  # the store failed meanwhile: keep the frames
            raise
        await self._take_round(batch, rendering, started)

    async def _take_round(self, batch: list[BatchJob], rendering: asyncio.Future, started: float) -> None:
        try:
            frames = await rendering
        except Exception as err:  # not one job's fault (those are each job's error): the round itself
            log.exception("render round of jobs %s failed", [a.job.id for a in batch])
            for active in batch:
                self._leave(active)
                await self._finish(active.job, JobStatus.FAILED, error=describe_failure(err))
            return
        elapsed = time.monotonic() - started
        metrics.round_rendered(sum(f is not None for f in frames), batch[0].job.params.control, elapsed)
        for active, frame in zip(batch, frames):
            await self._after_frame(active, frame, elapsed)

    def _render_round(self, batch: list[BatchJob]) -> list[np.ndarray | None]:
        """GPU thread: build the jobs' missing ``JobRender``s (``engine.runtime.render_job``), then
        render one frame of each job, their steps batched."""
        loaded = self._weights(batch)
        if loaded is None:
            return [None] * len(batch)
        for active in batch:
            if active.render is None and active.error is None and not active.cancel.is_set():
                if not self._coherence_fits(active, loaded, batch):
                    continue  # waits in the batch until a cross-frame job ends
                try:
                    params = active.job.params
                    picture = load_picture(self.config.data_dir, params.image_key) if params.image_key else None
                    self.checks.check_picture(active, picture)  # before any denoising: Unsafe when flagged
                    active.render = JobRender(loaded, self.catalog, self.config.engine, params,
                                              work_dir=active.work_dir, cancel=active.cancel, picture=picture)  # fmt: skip
                except Exception as err:
                    active.error = err
        live = [a for a in batch if a.render is not None and not a.cancel.is_set() and not a.render.done]
        by_job: dict[int, np.ndarray | None] = {}
        for start in range(0, len(live), self.fits):
            by_job.update(self._next_frames(live[start : start + self.fits]))
        frames = [by_job.get(a.job.id) for a in batch]
        self.checks.check_round(batch, frames)  # frame 0, every k-th and the last: before anything shows them
        return frames

    def _coherence_fits(self, active: BatchJob, loaded, batch: list[BatchJob]) -> bool:
        """GPU thread: whether a job's cross-frame states fit ``[engine] coherence_budget_mb`` beside
        those of the jobs rendering now. With no cross-frame job rendering any job starts (``JobRender``
        refuses one larger than the whole budget), so a waiting job never waits for good."""
        needed = coherence_bytes(loaded, self.config.engine, active.job.params)
        used = sum(a.render.coherence_bytes for a in batch if a.render is not None and not a.render.done)
        return needed == 0 or used == 0 or used + needed <= self.config.engine.coherence_budget_mb * 2**20

    def _next_frames(self, group: list[BatchJob]) -> dict[int, np.ndarray | None]:
        """GPU thread: the next frame of each job of ``group``, their steps batched (``next_frames``).

        A bad job fails alone: when the shared call raises, each job is retried alone, and only a job
        that raises alone gets the error (its sentence at its end); a job whose frame was accepted
        before the call raised keeps that frame. Out of memory is the round's size, not one job's
        fault: the jobs are retried alone too (one that does not fit alone fails with the
        out-of-memory sentence), and the batch's rounds take at most half as many jobs from then on.
        """
        before = [len(active.render.frames) for active in group]
        try:
            return dict(zip((active.job.id for active in group), next_frames([a.render for a in group])))
        except Exception as err:
            if isinstance(err, OutOfMemory):
                metrics.OUT_OF_MEMORY.inc()
            if len(group) == 1:
                group[0].error = err
                return {}
            log.warning("render round of jobs %s failed (%s); retrying them one at a time",
                        [active.job.id for active in group], err)  # fmt: skip
            if isinstance(err, OutOfMemory):
                self.fits = max(1, len(group) // 2)
        frames: dict[int, np.ndarray | None] = {}
        for active, count in zip(group, before):
            if len(active.render.frames) > count:  # its frame was finished before the round raised
                frames[active.job.id] = active.render.frames[-1]
            else:
                frames.update(self._next_frames([active]))
        return frames

    def _weights(self, batch: list[BatchJob]):
        """GPU thread: the batch's model (one per batch: ``batch_key``) with its LoRAs on, or None when
        it cannot be had; then every job of the batch gets the error (a removed name, a broken file)."""
        try:
            return use_weights(self.gpu_models.cache, self.catalog, batch[0].job.params)
        except Exception as err:
            for active in batch:
                active.error = err
            return None

    async def _after_frame(self, active: BatchJob, frame: np.ndarray | None, elapsed: float) -> None:
        job = active.job
        if active.error is not None or active.cancel.is_set():
            await self._end_early(active)
            return
        if active.render is None:  # a cross-frame job waiting for the coherence budget (_coherence_fits)
            return
        if frame is not None:
            active.rendered += 1
            active.render_seconds += elapsed
            done = len(active.render.frames)
            eta = active.render_seconds / active.rendered * (job.frames_total - done)
            preview = self.checks.preview_allowed(active, done - 1)
            record = asyncio.create_task(self._record(active, frame, done, eta, active.recorded, preview),
                                         name=f"animabot-record-{job.id}-{done}")  # fmt: skip
            active.recorded = record
            self.records.add(record)
            record.add_done_callback(self._recorded)
        if active.render.done:  # also a job that resumed with every frame already on disk
            encode = asyncio.create_task(self._encode(active), name=f"animabot-encode-{job.id}")
            self.encodes.add(encode)
            encode.add_done_callback(self._encoded)
            self._leave(active)

    async def _end_early(self, active: BatchJob) -> None:
        """The job failed to start, was cancelled or ran out of time: it leaves the batch, ended."""
        job = active.job
        self._leave(active)
        await self._recorded_all(active)
        if active.error is not None:
            if not isinstance(active.error, UserError):
                log.error("job %d could not go on", job.id, exc_info=active.error)
            if isinstance(active.error, Unsafe):  # flagged: nothing it drew is kept
                await discard(self.store, self.config.data_dir, active)
            await self._finish(job, JobStatus.FAILED, error=describe_failure(active.error))
        elif active.timed_out:
            metrics.JOBS_FAILED.labels("timeout").inc()
            limit = self.config.engine.job_timeout_seconds
            error = f"The render took longer than the {limit:g} s limit; ask for fewer frames or steps."
            await self._finish(job, JobStatus.FAILED, error=error)
        elif not active.lost:
            await self._finish(job, JobStatus.CANCELLED)

    async def _record(
        self,
        active: BatchJob,
        frame: np.ndarray,
        done: int,
        eta: float,
        previous: asyncio.Task | None,
        preview: bool = True,
    ) -> None:
        """Write frame ``done - 1`` and its preview (file threads), then record the job's progress.
        ``preview=False``: the frame is not shown (the safety checker has not passed it); the
        stored preview stays.

        Runs while the next round renders; ``previous`` (the job's record of the frame before) ends first.
        """
        if previous is not None:
            await asyncio.wait([previous])
        job = active.job
        if active.lost or active.error is not None:
            return
        try:
            write = functools.partial(write_frame, active, done - 1, frame, preview=preview)
            await asyncio.get_running_loop().run_in_executor(self._files, write)
        except Exception as err:  # a full disk, say: the job fails at its next round, or before its encode
            log.error("job %d: frame %d could not be written", job.id, done - 1, exc_info=err)
            active.error = err
            active.cancel.set()
            return
        log.info("job %d frame %d saved", job.id, done - 1)
        prefix = job_prefix(job.id)
        preview_key = f"{prefix}preview.jpg"
        files = None
        if not self.store.blobs.local:  # new frames and the preview go into the database with the progress
            stored = job.frames_done if active.stored < 0 else active.stored
            files = {f"{prefix}frames/{i:05d}.png": active.work_dir / f"{i:05d}.png" for i in range(stored, done)}
            if preview:
                files[preview_key] = active.work_dir.parent / "preview.jpg"
        preview_path = str(active.work_dir.parent / "preview.jpg") if self.store.blobs.local else preview_key
        preview_path = preview_path if preview else None  # None: the stored preview stays
        try:
            await self.store.update_progress(
                job.id, done, preview_path=preview_path, eta_seconds=eta, token=job.lease_token, files=files
            )
        except LeaseLost:
            self._lost(active)
            return
        except StoreFull as err:  # the database's disk is full: the job fails (its end waits for space)
            log.error("job %d: the job store is full; frame %d cannot be counted", job.id, done - 1)
            active.error = err
            active.cancel.set()
            return
        except StoreUnavailable:  # the next frame's record (or the job's end) brings the store up to date
            log.warning("job %d: frame %d is saved, but the job store is unreachable to count it", job.id, done - 1)
            return
        active.stored = done
        self._publish(Progress(job.id, JobStatus.RUNNING, done, job.frames_total, eta, preview_path))

    async def _recorded_all(self, active: BatchJob) -> None:
        """Until the job's frames rendered so far are written and recorded (or failed to be)."""
        if active.recorded is not None:
            await asyncio.wait([active.recorded])

    def _lost(self, active: BatchJob) -> None:
        """The job was claimed again elsewhere (this worker was cut off or paused past its lease): drop it."""
        log.warning("job %d: lost its lease (claimed again by another worker); dropping it", active.job.id)
        active.lost = True
        active.cancel.set()
        self.serving.discard(active.job.id)
        self._leave(active)

    def _leave(self, active: BatchJob) -> None:
        self.active.pop(active.job.id, None)
        self._on_change()

    def _encoded(self, task: asyncio.Task) -> None:
        self.encodes.discard(task)
        self._on_change()

    def _recorded(self, task: asyncio.Task) -> None:
        self.records.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording a frame failed", exc_info=task.exception())
        self._on_change()

    # -- encoding ---------------------------------------------------------------------------------
    async def _encode(self, active: BatchJob) -> None:
        job = active.job
        await self._recorded_all(active)
        if active.lost:
            return
        if active.error is not None:
            await self._finish(job, JobStatus.FAILED, error=describe_failure(active.error))
            return
        out = active.work_dir.parent / result_filename(job.id, job.seed, ext=job.params.format)
        if active.spoiler:  # flagged under the spoiler policy: the front end posts it hidden
            out = out.with_name(SPOILER_PREFIX + out.name)
        finish = functools.partial(active.render.finish, out, job_id=job.id)
        try:
            await asyncio.get_running_loop().run_in_executor(self._cpu, finish)
        except Exception as err:
            log.exception("job %d: encoding failed", job.id)
            await self._finish(job, JobStatus.FAILED, error=describe_failure(err))
            return
        await self._finish(job, JobStatus.DONE, result=out)

"""A render job a runtime holds, what it publishes about it, and the files it writes for it.

``BatchJob`` is the batcher's state of one claimed job; ``write_frame`` (file threads) writes each
frame and the preview (the finished file is ``JobRender.finish``'s, in ``engine.runtime.render_job``);
``describe_failure`` is the sentence its requester reads when it fails.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import Config
from engine.errors import DISK_FULL, OutOfMemory, UserError, is_disk_full
from engine.files import write_atomic
from engine.ops import metrics
from engine.runtime.render_job import JobRender
from engine.store.jobs import Job, JobStatus


@dataclass(frozen=True)
class Progress:
    """What the runtime publishes to in-process subscribers after each frame and at the end."""

    job_id: int
    status: JobStatus
    frames_done: int
    frames_total: int
    eta_seconds: float | None = None
    preview_path: str | None = None
    result_path: str | None = None
    error: str | None = None


def job_dir(config: Config, job_id: int) -> Path:
    """Where a job's frames, preview and result live."""
    return config.jobs_dir / str(job_id)


def describe_failure(err: BaseException) -> str:
    """The sentence a user reads for a failed job (every failure but a timeout is worded here once,
    so its reason is counted here too)."""
    metrics.JOBS_FAILED.labels(metrics.failure_reason(err)).inc()
    if is_disk_full(err):  # a frame, a blob, the video or the database could not be written
        return DISK_FULL
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OutOfMemory):
        return "The GPU ran out of memory; try a smaller size or fewer frames, or retry when the queue is quieter."
    if "ffmpeg" in str(err).lower():
        return "Encoding the video failed; please try again (the host can find details in the log)."
    return "The render failed unexpectedly; the host can find details in the log."


# finish(job, status, result=..., error=...): the runtime's shielded final write, which also publishes it.
Finish = Callable[..., Awaitable[Job]]


@dataclass(eq=False)
class BatchJob:
    """A render job this runtime claimed: its frame chain lives on the GPU thread."""

    job: Job
    work_dir: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    render: JobRender | None = None  # its frame chain and weights, built on the GPU thread
    claimed_at: float = field(default_factory=time.monotonic)
    render_seconds: float = 0.0
    rendered: int = 0
    timed_out: bool = False
    stored: int = -1  # frames the store has (in its blobs too); -1: the job's frames_done when claimed
    error: BaseException | None = None  # set when this job alone cannot be rendered
    recorded: asyncio.Task | None = None  # the job's latest frame being written and recorded
    lost: bool = False  # another worker claimed the job (its lease ran out): drop it, write nothing
    cleared: int = -1  # the latest frame the safety checker passed (engine.runtime.frame_checks)
    spoiler: bool = False  # a spoiler-mode job the checker flagged: its result is posted hidden

    @property
    def batch_key(self) -> str:
        return self.job.params.batch_key()


def write_frame(active: BatchJob, index: int, frame: np.ndarray, *, preview: bool = True) -> None:
    """File thread: the frame as PNG (what a resume reads) and, unless withheld, the job's preview JPEG."""
    from engine.render.frames import save_frame
    from engine.video.preview import preview_jpeg

    save_frame(active.work_dir, index, frame)
    if preview:
        write_atomic(active.work_dir.parent / "preview.jpg", preview_jpeg(frame))

"""The content policy on the worker: a job's start picture and frames, checked by the safety checker.

A job carries the mode it was requested under (``Job.safety``: ``off``, ``block`` or ``spoiler``,
``engine.request.safety``). Where the mode is not ``off`` and the host configured a checker
(``[safety] model``, ``enabled``), :class:`FrameChecks` checks, on the GPU thread:

1. the member's start picture, when the job's frame chain is built, before any denoising;
2. frame 0 as soon as it is drawn (a flagged frame 0 stops the job before the chain goes on), then
   every ``[safety] every_k_frames``-th frame and the last one, the frames of one round in one batch.

``block``: a flagged picture or frame ends the job with :data:`~engine.request.safety.FLAGGED`,
and everything it left (frames, preview, the start picture) is deleted at once (:func:`discard`).
``spoiler``: the render goes on, and its result is named ``SPOILER_...`` (the front end posts it
hidden). Either way previews are withheld until their frame is checked: a frame's preview is
written only when that frame was checked and passed (``BatchJob.cleared``), so a preview never
shows a frame the checker has not seen, and none is written after a flag.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

import numpy as np

from engine.config import SafetyConfig
from engine.errors import UserError
from engine.ops import metrics
from engine.request.safety import FLAGGED
from engine.runtime.in_flight import BatchJob
from engine.store.blobs import job_prefix
from engine.store.jobs import Job
from engine.store.pictures import picture_blob_key, picture_path

log = logging.getLogger(__name__)


class Unsafe(UserError):
    """A start picture or frame the checker flagged in a ``block`` job; its text is what members read."""

    def __init__(self, what: str) -> None:
        super().__init__(FLAGGED)
        self.what = what  # "the start picture", "frame 3": for the moderators' log line


def due(index: int, total: int, every: int) -> bool:
    """Whether frame ``index`` of ``total`` is checked: the first, every ``every``-th and the last."""
    return index == 0 or index % every == 0 or index == total - 1


class FrameChecks:
    """GPU thread: the checker (loaded on first use, on ``device``) and the checks of jobs' pictures."""

    def __init__(self, safety: SafetyConfig, *, device: str, dtype: str) -> None:
        self.safety = safety
        self.device = device
        self.dtype = dtype
        self._checker = None  # engine.render.safety_checker.SafetyChecker, loaded by flagged()

    def applies(self, job: Job) -> bool:
        """Whether ``job``'s pictures are checked: its mode asks for it and this host has a checker."""
        return job.safety != "off" and self.safety.checks_pictures

    def flagged(self, pictures: Sequence[np.ndarray]) -> list[bool]:
        """GPU thread: the checker's verdict on each picture, as one batch."""
        if self._checker is None:
            from engine.render.safety_checker import SafetyChecker

            self._checker = SafetyChecker(self.safety.model, device=self.device, dtype=self.dtype)
        return self._checker.flagged(list(pictures), self.safety.threshold)

    def check_picture(self, active: BatchJob, picture: np.ndarray | None) -> None:
        """GPU thread, before the job's chain is built: raises :class:`Unsafe` for a flagged start
        picture in a ``block`` job (a ``spoiler`` job is marked instead)."""
        if picture is not None and self.applies(active.job) and self.flagged([picture])[0]:
            self.flag(active, "the start picture", kind="picture")
            if active.error is not None:
                raise active.error

    def check_round(self, batch: Sequence[BatchJob], frames: Sequence[np.ndarray | None]) -> None:
        """GPU thread, after a round: check the new frames that are due, all jobs' in one batch. A
        checker that fails fails the checked jobs (never their frames unchecked)."""
        checked = [
            (active, frame)
            for active, frame in zip(batch, frames)
            if frame is not None and active.render is not None and active.error is None and self.applies(active.job)
            and due(len(active.render.frames) - 1, active.job.frames_total, self.safety.every_k_frames)
        ]  # fmt: skip
        if not checked:
            return
        try:
            verdicts = self.flagged([frame for _, frame in checked])
        except Exception as err:
            log.exception("the safety checker failed on jobs %s", [active.job.id for active, _ in checked])
            for active, _ in checked:
                active.error = err
            return
        for (active, _), flagged in zip(checked, verdicts):
            index = len(active.render.frames) - 1
            if flagged:
                self.flag(active, f"frame {index}")
            elif not active.spoiler:
                active.cleared = index

    def check_video(self, active: BatchJob, frames: Sequence[np.ndarray], what: str) -> None:
        """GPU thread: a finished video that is posted again under ``active.job``'s mode (a mux job,
        ``what`` naming the video): its frame 0, every k-th and the last, as one batch. A flag is a
        render's (:meth:`flag`): ``active.error`` under ``block``, ``active.spoiler`` under ``spoiler``."""
        if not self.applies(active.job):
            return
        every = self.safety.every_k_frames
        checked = [(index, frame) for index, frame in enumerate(frames) if due(index, len(frames), every)]
        verdicts = self.flagged([frame for _, frame in checked])
        flagged = [index for (index, _), verdict in zip(checked, verdicts) if verdict]
        if flagged:
            self.flag(active, f"frame {flagged[0]} of {what}")

    def flag(self, active: BatchJob, what: str, *, kind: str = "frame") -> None:
        """``active``'s ``what`` (``the start picture``, ``frame 3``) was flagged: the job is stopped
        (``block``) or its result will be a spoiler, logged for the moderators and counted
        (``animabot_safety_flagged_total``, ``kind``: ``picture`` or ``frame``)."""
        job = active.job
        if job.safety == "spoiler":
            if not active.spoiler:
                log.warning("job %d by user %d in guild %s, channel %s: %s flagged; its result will be a spoiler",
                            job.id, job.user_id, job.guild_id, job.origin_id, what)  # fmt: skip
                metrics.SAFETY_FLAGGED.labels("spoiler", kind).inc()
            active.spoiler = True
        else:
            log.warning("job %d by user %d in guild %s, channel %s: %s flagged; the render is stopped",
                        job.id, job.user_id, job.guild_id, job.origin_id, what)  # fmt: skip
            metrics.SAFETY_FLAGGED.labels("block", kind).inc()
            active.error = Unsafe(what)

    def preview_allowed(self, active: BatchJob, index: int) -> bool:
        """Whether frame ``index``'s preview may be shown: it was checked and passed, or the job is unchecked."""
        return not self.applies(active.job) or (not active.spoiler and active.cleared >= index)


async def discard(store, data_dir, active: BatchJob) -> None:
    """Delete what a flagged job left: its frames, preview and result, here and in the blobs, and its start
    picture (``engine.store.pictures``): nothing flagged is kept longer than needed."""
    job = active.job
    shutil.rmtree(active.work_dir.parent, ignore_errors=True)
    await store.blobs.delete(job_prefix(job.id))
    if job.params is not None and job.params.image_key:
        picture_path(data_dir, job.params.image_key).unlink(missing_ok=True)
        await store.blobs.delete(picture_blob_key(job.params.image_key))


class AloneChecks:
    """One render alone (``animabot render --safety check``), checked like a ``block`` job on the worker:
    its start picture, then frame 0, every ``every_k_frames``-th frame and the last, each as it comes;
    the first flagged one raises :class:`Unsafe` (the render stops there). What was looked at is
    counted for the summary line (:meth:`summary`)."""

    def __init__(self, checks: FrameChecks, total: int) -> None:
        self.checks = checks
        self.total = total
        self.picture_checked = False
        self.frames_checked = 0
        self.flagged = 0

    def picture(self, picture: np.ndarray) -> None:
        """GPU thread, before the chain is built: the start picture."""
        self.picture_checked = True
        self._check("the start picture", picture)

    def frame(self, index: int, frame: np.ndarray) -> None:
        """GPU thread, after frame ``index`` is drawn: checked when it is due (:func:`due`)."""
        if due(index, self.total, self.checks.safety.every_k_frames):
            self.frames_checked += 1
            self._check(f"frame {index}", frame)

    def summary(self) -> str:
        """``5 frames checked (and the start picture), 0 flagged``."""
        frames = f"{self.frames_checked} frame{'' if self.frames_checked == 1 else 's'} checked"
        return f"{frames}{' (and the start picture)' if self.picture_checked else ''}, {self.flagged} flagged"

    def _check(self, what: str, picture: np.ndarray) -> None:
        if self.checks.flagged([picture])[0]:
            self.flagged += 1
            raise Unsafe(what)

"""Render one clip to an MP4: the whole job, read top to bottom as a numbered script."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.render.chain import render_frames
from engine.render.frames import load_frames, save_frame
from engine.request.params import RenderParams


@dataclass(frozen=True)
class RenderResult:
    path: Path
    seed: int
    frames: int
    seconds: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames, 1)


def render_video(
    components,
    params: RenderParams,
    out: Path,
    *,
    work_dir: Path | None = None,
    cancel: threading.Event | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    picture: np.ndarray | None = None,
    recipe: Callable[[RenderParams], dict] | None = None,
) -> RenderResult:
    """Render ``params`` to ``out``. With ``work_dir``, frames are kept there and a rerun resumes.

    ``picture``: the fitted picture (``engine.request.picture``) of params with an ``image_key``.
    ``recipe(params)`` (params with their concrete seed) gives the recipe stored in the file; the
    clip is looped, smoothed and written in ``params.format`` by :func:`engine.video.finish.finish_clip`.
    """
    from engine.video.finish import finish_clip  # ffmpeg is only needed once frames exist

    # 1. check inputs
    params = params.validate()
    if params.seed is None:
        params = params.with_seed()

    # 2. plan frames: reuse the frames an interrupted run left behind
    frames = load_frames(work_dir, params.frames) if work_dir is not None else []
    started = time.perf_counter()

    # 3. render the chain
    for index, frame in enumerate(
        render_frames(components, params, frames=frames, cancel=cancel, on_step=on_step, picture=picture),
        start=len(frames),
    ):
        if work_dir is not None:
            save_frame(work_dir, index, frame)
        frames.append(frame)
        if on_frame is not None:
            on_frame(index, frame)
    seconds = time.perf_counter() - started

    # 4. encode
    path = finish_clip(
        frames, out, params.fps, loop=params.loop, smooth=params.smooth, fmt=params.format,
        recipe=recipe(params) if recipe is not None else None,
    )  # fmt: skip
    return RenderResult(path=Path(path), seed=params.seed, frames=len(frames), seconds=seconds)

"""From rendered frames to the shared clip: loop, smooth, write in a format with the recipe inside.

The one place a job's frames become its file (``engine.runtime.render_job.JobRender.finish``, which
the worker and ``animabot render`` both call):

1. ``loop="pingpong"`` plays the clip forward then backward (:func:`engine.video.loops.pingpong`);
   ``seamless`` is made while rendering (``engine.render.chain``) and needs nothing here;
2. ``smooth`` f draws f−1 optical-flow frames between each pair (:mod:`engine.video.interpolate`)
   and plays the result at f× the fps, so the clip keeps its length;
3. the frames are written in ``fmt`` (mp4, gif, webp) with the recipe in the file's metadata.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.video.formats import write_clip
from engine.video.interpolate import smooth_frames, smoothed_fps
from engine.video.loops import pingpong


def shown_frames(frames: Sequence[np.ndarray], *, loop: str = "none", smooth: int = 1) -> list[np.ndarray]:
    """The frames the clip shows: ``frames`` looped (pingpong) and then smoothed."""
    shown = pingpong(frames) if loop == "pingpong" else list(frames)
    return smooth_frames(shown, smooth)


def finish_clip(
    frames: Sequence[np.ndarray],
    out: str | os.PathLike,
    fps: float,
    *,
    loop: str = "none",
    smooth: int = 1,
    fmt: str | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write the clip of ``frames`` (rendered at ``fps``) to ``out``; return its path."""
    return write_clip(shown_frames(frames, loop=loop, smooth=smooth), out, smoothed_fps(fps, smooth), fmt=fmt,
                      recipe=recipe)  # fmt: skip

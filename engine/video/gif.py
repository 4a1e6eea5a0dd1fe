"""GIF: frames → a looping GIF with a palette made for this clip (ffmpeg palettegen → paletteuse).

A GIF autoplays inline in Discord. ffmpeg builds one palette from every pixel of the clip
(``palettegen=stats_mode=full``), maps each frame onto it, and writes one GIF frame per input
frame: its GIF encoder shrinks a frame that barely changes to the changed rectangle but never
drops or merges it, so a decoder counts every rendered frame. Frame delays are whole
centiseconds; ffmpeg rounds them so their sum stays on the clip's time grid.

The raw frames go to ffmpeg through a temp file rather than a pipe, so the command line is the
plain :func:`engine.video.runner.ffmpeg_command` one, run under its time limit.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from engine.files import atomic_output
from engine.video.embedded_recipe import gif_with_comment, recipe_text
from engine.video.encode import as_rgb_frame
from engine.video.runner import ffmpeg_command, ffmpeg_failure, ffmpeg_path, run_ffmpeg

log = logging.getLogger(__name__)

GIF_COLOURS = 256
GIF_DITHER = "sierra2_4a"


def gif_command(raw: Path, tmp: Path, width: int, height: int, fps: float, colours: int, frames: int) -> list[str]:
    """The ffmpeg command line: raw rgb24 frames in ``raw`` → a looping GIF with a per-clip palette."""
    source = ffmpeg.input(ffmpeg_path(raw), format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
    split = source.split()
    palette = split[0].filter("palettegen", max_colors=colours, stats_mode="full", reserve_transparent=0)
    mapped = ffmpeg.filter([split[1], palette], "paletteuse", dither=GIF_DITHER, diff_mode="rectangle")
    stream = mapped.output(ffmpeg_path(tmp), format="gif", loop=0, final_delay=final_delay_cs(frames, fps))
    return ffmpeg_command(stream, overwrite=True)


def final_delay_cs(frames: int, fps: float) -> int:
    """The last frame's delay in centiseconds, on the same rounded time grid as ffmpeg's other delays.

    ffmpeg repeats the previous delay for the last frame by default, which can make the whole GIF
    a centisecond longer than ``frames / fps``.
    """
    stamp = [math.floor(100 * i / fps + 0.5) for i in (frames - 1, frames)]
    return max(1, stamp[1] - stamp[0])


def encode_gif(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    *,
    colours: int = GIF_COLOURS,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``frames`` (HxWx3 uint8 RGB) to ``path`` as a looping GIF at ``fps`` with ≤ ``colours`` colours.

    ``recipe`` is stored in a GIF comment (:func:`engine.video.embedded_recipe.gif_with_comment`).
    """
    if len(frames) == 0:
        raise ValueError(f"no frames to encode into {path}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 2 <= colours <= 256:
        raise ValueError(f"a GIF has 2 to 256 colours, got {colours}")
    height, width = frames[0].shape[:2]
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="animabot-gif-") as folder:
        raw = Path(folder) / "frames.rgb"
        with raw.open("wb") as file:
            for frame in frames:
                file.write(memoryview(as_rgb_frame(frame, width, height)).cast("B"))
        with atomic_output(path) as tmp:
            result = run_ffmpeg(gif_command(raw, tmp, width, height, fps, colours, len(frames)))
            if result.returncode != 0:
                raise ffmpeg_failure(f"encode {path.name}", result)
            if recipe is not None:
                tmp.write_bytes(gif_with_comment(tmp.read_bytes(), recipe_text(recipe)))
    log.info("wrote %s: %d frames, %dx%d at %g fps, %d colours", path, len(frames), width, height, fps, colours)
    return path

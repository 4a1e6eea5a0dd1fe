"""Previews for progress messages: one frame as a small JPEG, frames as a small looping animation.

Pillow only; no ffmpeg.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.video.encode import as_rgb_frame

log = logging.getLogger(__name__)


def _thumbnail(frame: np.ndarray, max_side: int) -> Image.Image:
    image = Image.fromarray(as_rgb_frame(frame))
    image.thumbnail((max_side, max_side))  # shrinks only, keeps the aspect ratio
    return image


def preview_jpeg(frame: np.ndarray, max_side: int = 320) -> bytes:
    """One frame as a JPEG whose longer side is at most ``max_side``."""
    buffer = io.BytesIO()
    _thumbnail(frame, max_side).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def preview_animation(frames: Sequence[np.ndarray], fps: float, max_side: int = 256) -> bytes:
    """Frames as a looping animated WebP (a GIF where Pillow lacks WebP), longer side ≤ max_side.

    Identical consecutive frames may be merged by the encoder into one longer frame.
    """
    if len(frames) == 0:  # not `not frames`: a 4-D array of frames is a Sequence too
        raise ValueError("no frames to preview")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [_thumbnail(frame, max_side) for frame in frames]
    options = dict(save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    buffer = io.BytesIO()
    try:
        images[0].save(buffer, format="WEBP", quality=70, **options)
    except (KeyError, OSError):  # this Pillow was built without (animated) WebP
        log.debug("animated WebP unavailable; previewing as GIF")
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", **options)
    return buffer.getvalue()

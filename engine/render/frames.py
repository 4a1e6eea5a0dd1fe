"""A job's rendered frames on disk (``NNNNN.png``): what lets an interrupted render resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.files import atomic_output


def frame_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"{index:05d}.png"


def save_frame(directory: Path, index: int, frame: np.ndarray) -> Path:
    """Write through ``engine.files.atomic_output``, so a crash never leaves a half-written frame."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = frame_path(directory, index)
    with atomic_output(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG", compress_level=1)
    return path


def load_frames(directory: Path, limit: int | None = None) -> list[np.ndarray]:
    """The frames 0, 1, 2, … saved so far, stopping at the first gap (or at ``limit``)."""
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        path = frame_path(directory, len(frames))
        if not path.exists():
            break
        with Image.open(path) as image:
            frames.append(np.array(image.convert("RGB")))  # a writable copy, as rendered frames are
    return frames

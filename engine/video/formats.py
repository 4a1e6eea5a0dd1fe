"""Clip formats: ``mp4`` (the default), ``gif`` and ``webp``; which writer makes each, and name checks.

:func:`clip_format` maps a format name or file extension to its :class:`ClipFormat`;
:func:`check_format_matches` refuses an output file name that contradicts the chosen format;
:func:`write_clip` writes frames in a format with the recipe inside. Every writer keeps every
frame (a decoder counts exactly the frames given) and writes atomically.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UserError
from engine.video.embedded_recipe import recipe_xmp
from engine.video.encode import encode_frames
from engine.video.gif import GIF_COLOURS, encode_gif
from engine.video.webp import WEBP_QUALITY, encode_webp

DEFAULT_FORMAT = "mp4"

Recipe = Mapping[str, Any] | None


def _write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float, recipe: Recipe, level: int | None) -> Path:
    return encode_frames(frames, path, fps, recipe=recipe)  # level: fit_to_size lowers the bitrate instead


def _write_gif(frames: Sequence[np.ndarray], path: Path, fps: float, recipe: Recipe, level: int | None) -> Path:
    return encode_gif(frames, path, fps, colours=level or GIF_COLOURS, recipe=recipe)


def _write_webp(frames: Sequence[np.ndarray], path: Path, fps: float, recipe: Recipe, level: int | None) -> Path:
    xmp = recipe_xmp(recipe) if recipe is not None else None
    return encode_webp(frames, path, fps, quality=level or WEBP_QUALITY, xmp=xmp)


@dataclasses.dataclass(frozen=True)
class ClipFormat:
    """One output format.

    ``write(frames, path, fps, recipe, level)`` writes the clip; ``level`` is the format's size
    knob (GIF colours, WebP quality; ``None`` for the default) and ``fit_levels`` the values
    :func:`engine.video.edit.fit_to_size` steps down through before it shrinks the picture.
    """

    name: str
    ext: str
    mime: str
    write: Callable[[Sequence[np.ndarray], Path, float, Recipe, int | None], Path]
    fit_levels: tuple[int, ...] = ()
    even_size: bool = False  # yuv420p H.264 needs even widths and heights


FORMATS: Mapping[str, ClipFormat] = {
    "mp4": ClipFormat("mp4", "mp4", "video/mp4", _write_mp4, even_size=True),
    "gif": ClipFormat("gif", "gif", "image/gif", _write_gif, fit_levels=(256, 128, 64, 32, 16)),
    "webp": ClipFormat("webp", "webp", "image/webp", _write_webp, fit_levels=(80, 60, 40, 25, 10)),
}


def clip_format(name: str | None) -> ClipFormat:
    """The format for a name or extension (``"gif"``, ``".GIF"``); ``None`` or ``""`` is mp4."""
    key = (name or DEFAULT_FORMAT).strip().lower().lstrip(".")
    if key not in FORMATS:
        raise UserError(f"The format {name!r} is not one animabot writes; choose {', '.join(FORMATS)}.")
    return FORMATS[key]


def check_format_matches(path: str | os.PathLike, name: str | None = None) -> ClipFormat:
    """The format to write ``path`` in: ``name`` if given, else the file's extension.

    A ``name`` that contradicts the extension (``gif`` for ``clip.mp4``) raises ``UserError``; so
    does an unknown extension when no ``name`` is given.
    """
    path = Path(path)
    if name is None:
        return clip_format(path.suffix or DEFAULT_FORMAT)
    chosen = clip_format(name)
    suffix = path.suffix.lower().lstrip(".")
    if suffix and suffix != chosen.ext:
        raise UserError(
            f"The format {chosen.name} does not match the file name {path.name}; "
            f"name it {path.stem}.{chosen.ext} or choose {suffix}."
        )
    return chosen


def write_clip(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    *,
    fmt: str | None = None,
    recipe: Recipe = None,
) -> Path:
    """Write ``frames`` (HxWx3 uint8 RGB) to ``path`` in ``fmt`` (default: by extension), recipe inside."""
    chosen = check_format_matches(path, fmt)
    return chosen.write(frames, Path(path), fps, recipe, None)

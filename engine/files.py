"""The engine's file rules: one atomic writer and one result filename, used by every layer.

A file is written under a hidden, unique sibling name and renamed onto its target only when it is
complete, so a crash or a failure never leaves a half-written frame, preview or video behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def temp_path_for(target: Path) -> Path:
    """A hidden, unique sibling of ``target`` with the same suffix (ffmpeg and PIL pick formats by it)."""
    return target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.part{target.suffix}")


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` if the block succeeds.

    Whatever happens, the temp file is gone afterwards.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_output(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def result_filename(job_id: int, seed: int | None, *, audio: bool = False, ext: str = "mp4") -> str:
    """The one name of a result file: ``animabot-42-seed1234.mp4``.

    A video with a member's soundtrack is named after the render it carries
    (``animabot-43-seed1234-audio.mp4``; ``animabot-43-audio.mp4`` when that seed is unknown).
    """
    seed_part = f"-seed{seed}" if seed is not None else ""
    audio_part = "-audio" if audio else ""
    return f"animabot-{job_id}{seed_part}{audio_part}.{ext}"

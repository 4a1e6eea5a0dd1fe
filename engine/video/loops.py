"""Loops: a clip that plays forward and then backward (``pingpong``), so its end meets its start.

Pure functions over frame lists; nothing is decoded or encoded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

Frame = TypeVar("Frame")


def pingpong(frames: Sequence[Frame]) -> list[Frame]:
    """``frames`` forward, then backward without repeating either end: 2N−2 frames in mirror order.

    ``[a, b, c, d]`` becomes ``[a, b, c, d, c, b]``: played in a loop, ``b`` follows the last ``b``
    and ``a`` follows it, so no frame is shown twice in a row. One or two frames have no middle to
    mirror: one frame stays one frame, and ``[a, b]`` stays ``[a, b]`` (2N−2 = 2). The frames are
    the same objects, not copies.
    """
    frames = list(frames)
    if len(frames) == 0:
        raise ValueError("no frames to loop")
    return frames + frames[-2:0:-1]


def pingpong_count(n: int) -> int:
    """How many frames :func:`pingpong` makes of ``n``: 2n−2 (and 1 for a single frame)."""
    if n < 1:
        raise ValueError(f"a clip has at least 1 frame, got {n}")
    return max(1, 2 * n - 2)

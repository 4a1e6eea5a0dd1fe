"""Control maps: what the ControlNet sees of the previous frame.

A small registry keyed by name, so depth or pose maps can be added beside Canny later. Each entry
is a pure function ``(rgb uint8 HxWx3, params) -> rgb uint8 HxWx3``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from engine.render.params import RenderParams

ControlFn = Callable[[np.ndarray, RenderParams], np.ndarray]

CONTROL_MAPS: dict[str, ControlFn] = {}


def register(name: str) -> Callable[[ControlFn], ControlFn]:
    def add(fn: ControlFn) -> ControlFn:
        CONTROL_MAPS[name] = fn
        return fn

    return add


@register("canny")
def canny(frame: np.ndarray, params: RenderParams) -> np.ndarray:
    """White Canny edges on black, three channels, as the SD1.5 Canny ControlNet was trained on."""
    edges = cv2.Canny(frame, params.canny_low, params.canny_high)
    return np.repeat(edges[:, :, None], 3, axis=2)


def control_map(frame: np.ndarray, params: RenderParams) -> np.ndarray:
    return CONTROL_MAPS[params.control](frame, params)

"""Control maps: what the ControlNet sees of the previous frame.

A small registry keyed by name of the maps that need no model: each entry is a pure function
``(rgb uint8 HxWx3, params) -> rgb uint8 HxWx3``. Depth and pose maps come from an annotator model
(``engine.render.steps.annotate``), which ``control_map`` is handed with the components.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from engine.request.params import RenderParams

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


def control_map(frame: np.ndarray, params: RenderParams, annotator: Callable | None = None) -> np.ndarray:
    """The ControlNet's input for ``frame``: the registered map, or the annotator's for depth and pose."""
    if params.control in CONTROL_MAPS:
        return CONTROL_MAPS[params.control](frame, params)
    if annotator is None:
        raise ValueError(f"the {params.control} control map needs its annotator (engine.render.weights.controls)")
    return annotator(frame)

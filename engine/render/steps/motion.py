"""Camera motion: warp the previous frame before it conditions the next one.

Each preset is an affine transform about the frame's centre; ``amount`` is the fraction of the frame
moved (pan), the relative scale change (zoom) or, times 30°, the rotation per frame.
"""

from __future__ import annotations

import cv2
import numpy as np


def motion_matrix(name: str, amount: float, width: int, height: int) -> np.ndarray:
    """The 2×3 affine matrix that moves the content of a ``width×height`` frame by one step."""
    centre = (width / 2.0, height / 2.0)
    if name == "none":
        return np.float32([[1, 0, 0], [0, 1, 0]])
    if name in ("zoom-in", "zoom-out"):
        scale = 1.0 + amount if name == "zoom-in" else 1.0 / (1.0 + amount)
        return cv2.getRotationMatrix2D(centre, 0.0, scale).astype(np.float32)
    if name in ("rotate-cw", "rotate-ccw"):
        degrees = amount * 30.0
        # OpenCV's positive angle turns the content counter-clockwise (y axis points down).
        return cv2.getRotationMatrix2D(centre, -degrees if name == "rotate-cw" else degrees, 1.0).astype(np.float32)
    # A pan slides the content in the preset's direction (pan-left: the picture moves left).
    shifts = {
        "pan-left": (-amount * width, 0.0),
        "pan-right": (amount * width, 0.0),
        "pan-up": (0.0, -amount * height),
        "pan-down": (0.0, amount * height),
    }
    if name not in shifts:
        raise ValueError(f"unknown motion {name!r}")
    dx, dy = shifts[name]
    return np.float32([[1, 0, dx], [0, 1, dy]])


def apply_motion(frame: np.ndarray, name: str, amount: float) -> np.ndarray:
    """Warp ``frame`` (HxWx3 uint8) by one step of the preset; edges are filled by reflection."""
    if name == "none" or amount == 0:
        return frame
    height, width = frame.shape[:2]
    matrix = motion_matrix(name, amount, width, height)
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

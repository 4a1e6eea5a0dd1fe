"""Colour coherence: keep every frame's colour statistics on frame 0's, which stops slow drift."""

from __future__ import annotations

import cv2
import numpy as np


def lab_stats(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of an RGB uint8 frame in LAB space."""
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab.mean(axis=(0, 1)), lab.std(axis=(0, 1))


def match_colors(frame: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Shift and scale ``frame``'s LAB channels to the reference mean and standard deviation."""
    ref_mean, ref_std = reference
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean, std = lab.mean(axis=(0, 1)), lab.std(axis=(0, 1))
    lab = (lab - mean) * (ref_std / np.maximum(std, 1e-3)) + ref_mean
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)

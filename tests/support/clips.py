"""Tiny media for the video tests: distinct RGB frames, noise frames, a sine-tone WAV."""

from __future__ import annotations

import numpy as np

FPS = 8
FRAMES = 10
SIZE = 64


def moving_square_frames(n: int = FRAMES, size: int = SIZE) -> list[np.ndarray]:
    """A horizontal gradient with a red square sliding across it: smooth, distinct frames."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    frames = []
    for i in range(n):
        frame = np.empty((size, size, 3), dtype=np.uint8)
        frame[..., 0] = ramp[None, :]
        frame[..., 1] = ramp[:, None]
        frame[..., 2] = 255 - ramp[None, :]
        x = 4 + i * (size - 24) // max(n - 1, 1)
        frame[16:32, x : x + 16] = (255, 0, 0)
        frames.append(frame)
    return frames


def noise_frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]

"""A flicker meter: how temporally consistent a clip is, as four numbers a benchmark can compare.

:func:`temporal_metrics` measures frames (HxWx3 uint8 RGB); :func:`measure_video` decodes a file
first. All pixel values are taken in [0, 1] (``value / 255``). With ``T`` frames ``V_1 … V_T`` and
``T − 1`` consecutive pairs ``(V_t, V_{t+1})``:

``warp_error_mean`` / ``warp_error_max``
    The warping error of Lai et al. 2018, "Learning Blind Video Temporal Consistency" (ECCV):
    ``E_pair(t) = Σ_i M_t(i)·‖V_t(i) − V̂_{t+1}(i)‖² / Σ_i M_t(i)``, where ``V̂_{t+1}`` is
    ``V_{t+1}`` warped back onto ``V_t`` with the optical flow ``F_{t→t+1}``, ``‖·‖²`` is the squared
    Euclidean distance of the RGB vectors, and ``M_t`` is the non-occlusion mask. The mean is
    Lai et al.'s ``E_warp = Σ_t E_pair(t) / (T − 1)``; the max is the worst pair. A pair whose mask
    is empty counts 0. Unlike Lai et al., who take the flow (FlowNet2) from the unprocessed input
    video, there is no input video here: the flow is OpenCV's DIS flow between the clip's own frames,
    so the error measures change that motion does not explain (flicker, popping texture), not
    faithfulness to a source.
``M_t`` (occlusion mask)
    The forward–backward consistency check of Ruder et al. 2016, "Artistic Style Transfer for
    Videos" (GCPR), which Lai et al. use: with ``w = F_{t→t+1}(x)`` and ``ŵ = F_{t+1→t}(x + w)``,
    pixel ``x`` is occluded when ``|w + ŵ|² > 0.01·(|w|² + |ŵ|²) + 0.5`` (pixels) or its sampling
    point ``x + w`` leaves the picture.
``frame_diff_mean``
    ``Σ_t mean_i,c |V_{t+1}(i, c) − V_t(i, c)| / (T − 1)``: the mean absolute difference of
    consecutive frames over all pixels and channels, with no motion compensation.
``flicker_index``
    ``Σ_t |Y_{t+1} − Y_t| / (T − 1)``, where ``Y_t`` is the mean BT.601 luma
    (``0.299 R + 0.587 G + 0.114 B``) of frame ``t``: the frame-to-frame change of global brightness.
    It follows the global-flicker model of the deflickering literature, in which flicker is a
    per-frame change of overall intensity (Delon 2006, "Movie and Video Scale-Time Equalization:
    Application to Flicker Reduction", IEEE TIP 15(1)); it is not the IES lighting "flicker index".
    A steady fade also raises it, by its slope per frame.

A clip of one frame has no pairs: every error is 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from engine.video.encode import as_rgb_frame
from engine.video.interpolate import backward_warp, dense_flow, pixel_grid
from engine.video.read import decode_frames, probe

METRIC_KEYS = ("frames", "fps", "warp_error_mean", "warp_error_max", "frame_diff_mean", "flicker_index")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # ITU-R BT.601


def consistent_flow_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """HxW bool: where ``forward`` (t→t+1) and ``backward`` (t+1→t) agree (Ruder et al. 2016)."""
    height, width = forward.shape[:2]
    target = pixel_grid(height, width) + forward
    inside = (target[..., 0] >= 0) & (target[..., 0] <= width - 1) & (target[..., 1] >= 0)
    inside &= target[..., 1] <= height - 1
    back = backward_warp(backward, forward)  # ŵ = backward(x + w)
    mismatch = np.sum((forward + back) ** 2, axis=-1)
    allowed = 0.01 * (np.sum(forward**2, axis=-1) + np.sum(back**2, axis=-1)) + 0.5
    return inside & (mismatch <= allowed)


def pair_warp_error(first: np.ndarray, second: np.ndarray) -> float:
    """Lai et al.'s ``E_pair`` of two RGB uint8 frames (see the module docstring)."""
    forward, backward = dense_flow(first, second), dense_flow(second, first)
    mask = consistent_flow_mask(forward, backward)
    if not mask.any():
        return 0.0
    warped = backward_warp(second.astype(np.float32) / 255, forward)
    squared = np.sum((first.astype(np.float32) / 255 - warped) ** 2, axis=-1)
    return float(squared[mask].mean())


def mean_luma(frame: np.ndarray) -> float:
    """The mean BT.601 luma of an RGB uint8 frame, in [0, 1]."""
    return float(frame.reshape(-1, 3).mean(axis=0) @ LUMA_WEIGHTS / 255)


def temporal_metrics(frames: Sequence[np.ndarray], fps: float) -> dict[str, float | int]:
    """The flicker meter's numbers for ``frames`` shown at ``fps``; keys are :data:`METRIC_KEYS`."""
    if len(frames) == 0:
        raise ValueError("no frames to measure")
    frames = [as_rgb_frame(frame, frames[0].shape[1], frames[0].shape[0]) for frame in frames]
    pairs = list(zip(frames, frames[1:]))
    warp = [pair_warp_error(a, b) for a, b in pairs]
    diffs = [float(np.abs(b.astype(np.int16) - a).mean() / 255) for a, b in pairs]
    lumas = [mean_luma(frame) for frame in frames]
    flicker = [abs(b - a) for a, b in zip(lumas, lumas[1:])]
    return {
        "frames": len(frames),
        "fps": float(fps),
        "warp_error_mean": float(np.mean(warp)) if warp else 0.0,
        "warp_error_max": max(warp, default=0.0),
        "frame_diff_mean": float(np.mean(diffs)) if diffs else 0.0,
        "flicker_index": float(np.mean(flicker)) if flicker else 0.0,
    }


def measure_video(path: str | os.PathLike) -> dict[str, float | int]:
    """:func:`temporal_metrics` of a video file (MP4, GIF or animated WebP), decoded frame by frame."""
    info = probe(path)
    return temporal_metrics(decode_frames(path), info.fps)

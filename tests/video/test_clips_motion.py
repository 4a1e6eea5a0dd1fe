"""engine.video.loops, .interpolate and .metrics: loops, in-between frames, the flicker meter (pure, no ffmpeg)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.video.interpolate import smooth_frames, smoothed_count, smoothed_fps
from engine.video.loops import pingpong, pingpong_count
from engine.video.metrics import METRIC_KEYS, temporal_metrics

SIZE, SIDE = 64, 16


def square_at(x: int, brightness: int = 0) -> np.ndarray:
    """A yellow square at column ``x`` over a vertical green ramp, everything shifted by ``brightness``."""
    frame = np.full((SIZE, SIZE, 3), 60, np.int16)
    frame[..., 1] = np.linspace(0, 120, SIZE).astype(np.int16)[:, None]
    frame[24 : 24 + SIDE, x : x + SIDE] = (250, 200, 30)
    return np.clip(frame + brightness, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("n", "expected"), [(1, [0]), (2, [0, 1]), (3, [0, 1, 2, 1]), (5, [0, 1, 2, 3, 4, 3, 2, 1])])
def test_pingpong_plays_forward_then_backward_without_repeating_the_ends(n, expected):
    assert pingpong(list(range(n))) == expected
    assert pingpong_count(n) == len(expected)


def test_smooth_2_puts_the_square_half_way_between_its_neighbours():
    frames = [square_at(4 + 8 * i) for i in range(5)]
    out = smooth_frames(frames, 2)
    assert len(out) == smoothed_count(5, 2) == 9
    assert all(out[2 * k] is frames[k] for k in range(5))  # rendered frames are kept as they are
    for k in range(4):
        half_way = square_at(4 + 8 * k + 4)
        plain_blend = (frames[k].astype(np.float32) + frames[k + 1]) / 2
        error = np.abs(out[2 * k + 1].astype(np.float32) - half_way).mean()
        assert error < 1.0, f"in-between {k} is {error:.2f} grey levels from the half-way square"
        assert np.abs(plain_blend - half_way).mean() > 3.0  # a cross-fade would not pass


def test_smooth_4_gives_n_minus_1_times_4_plus_1_frames_at_4x_the_fps():
    frames = [square_at(4 + 8 * i) for i in range(3)]
    out = smooth_frames(frames, 4)
    assert len(out) == 9 and smoothed_fps(8, 4) == 32
    assert np.abs(out[2].astype(np.float32) - square_at(8)).mean() < 1.0  # t = 2/4 of the way from x=4 to x=12
    assert smooth_frames(frames, 1) == frames


def test_smooth_refuses_other_factors():
    with pytest.raises(ValueError, match="smooth must be one of 1, 2, 4, got 3"):
        smooth_frames([square_at(0)] * 2, 3)


def test_metrics_have_exactly_the_documented_keys():
    assert tuple(temporal_metrics([square_at(4), square_at(8)], 8)) == METRIC_KEYS


def test_a_square_moving_at_constant_speed_has_near_zero_warp_error_and_no_flicker():
    metrics = temporal_metrics([square_at(4 + 4 * i) for i in range(8)], 8)
    assert metrics["frames"] == 8 and metrics["fps"] == 8.0
    assert metrics["warp_error_mean"] < 1e-3 and metrics["warp_error_max"] < 2e-3
    assert metrics["frame_diff_mean"] > 0.005  # it does move: motion is not mistaken for flicker
    assert metrics["flicker_index"] < 1e-3


def test_brightness_alternating_frames_give_a_high_flicker_index_and_warp_error():
    steady = temporal_metrics([square_at(4 + 4 * i) for i in range(8)], 8)
    flickering = temporal_metrics([square_at(4 + 4 * i, 40 if i % 2 else 0) for i in range(8)], 8)
    assert flickering["flicker_index"] > 0.1 and steady["flicker_index"] < 1e-3
    assert flickering["warp_error_mean"] > 50 * steady["warp_error_mean"]

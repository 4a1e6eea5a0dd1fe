"""``loop="seamless"``: the closing frames steer back to frame 0, so the last frame flows into the first."""

import dataclasses

import numpy as np
import pytest

from engine.render.chain import render_frames
from engine.render.steps.loop import blend_toward, seamless_span, seamless_weight
from engine.request.params import RenderParams

PARAMS = RenderParams(prompt="a lighthouse at dusk", frames=8, fps=8, seed=7, steps=3, width=64, height=64,
                      motion="pan-left", motion_amount=0.08)  # fmt: skip


def last_to_first(frames) -> float:
    """The mean absolute difference (0..255) between the last frame and the first."""
    return float(np.abs(frames[-1].astype(np.float32) - frames[0].astype(np.float32)).mean())


def test_the_weights_ramp_up_over_the_closing_frames_and_never_reach_frame_0_itself():
    assert seamless_span(8) == 2
    assert [seamless_weight(k, 8) for k in range(8)] == [0, 0, 0, 0, 0, 0, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert [seamless_weight(k, 2) for k in range(2)] == [0.0, 0.0]  # nothing to steer in two frames


def test_blend_toward_mixes_pixels_by_weight():
    black, white = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    assert blend_toward(black, white, 0.0) is black
    assert (blend_toward(black, white, 0.5) == 128).all()


@pytest.mark.parametrize("strength", [0.6, 0.9])
def test_seamless_lowers_the_last_to_first_difference_on_the_same_seed(components, strength):
    plain = list(render_frames(components, dataclasses.replace(PARAMS, strength=strength)))
    looped = list(render_frames(components, dataclasses.replace(PARAMS, strength=strength, loop="seamless")))
    span = seamless_span(PARAMS.frames)
    for before, after in zip(plain[: PARAMS.frames - span], looped):  # the frames before the span are untouched
        assert np.array_equal(before, after)
    print(f"strength {strength}: last→first {last_to_first(plain):.2f} plain, {last_to_first(looped):.2f} seamless")
    assert last_to_first(looped) < 0.8 * last_to_first(plain)

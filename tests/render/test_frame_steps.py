"""The small pure steps around the GPU call: motion, control maps, colour, keyframes, frame files."""

import numpy as np
import pytest

from engine.errors import UserError
from engine.render.chain import prompt_schedule
from engine.render.frames import load_frames, save_frame
from engine.render.steps.color import lab_stats, match_colors
from engine.render.steps.control import control_map
from engine.render.steps.motion import apply_motion
from engine.request.params import RenderParams, keyframes


def _square(size=128, top=40, left=40, side=32):
    frame = np.zeros((size, size, 3), np.uint8)
    frame[top : top + side, left : left + side] = 255
    return frame


def _centroid(frame):
    ys, xs = np.nonzero(frame[:, :, 0] > 127)
    return xs.mean(), ys.mean()


@pytest.mark.parametrize(
    "motion, dx, dy",
    [("pan-left", -1, 0), ("pan-right", 1, 0), ("pan-up", 0, -1), ("pan-down", 0, 1)],
)
def test_pans_move_content_in_their_direction(motion, dx, dy):
    frame = _square(left=48, top=48)
    x0, y0 = _centroid(frame)
    x1, y1 = _centroid(apply_motion(frame, motion, 0.1))
    assert np.sign(round(x1 - x0)) == dx and np.sign(round(y1 - y0)) == dy
    assert abs((x1 - x0) + (y1 - y0)) == pytest.approx(12.8, abs=0.6)


@pytest.mark.parametrize("motion, grows", [("zoom-in", True), ("zoom-out", False)])
def test_zoom_scales_content_about_the_centre(motion, grows):
    frame = _square(left=48, top=48)
    moved = apply_motion(frame, motion, 0.25)
    before, after = (frame[:, :, 0] > 127).sum(), (moved[:, :, 0] > 127).sum()
    assert (after > before * 1.3) if grows else (after < before / 1.3)
    assert _centroid(moved) == pytest.approx(_centroid(frame), abs=1.0)


@pytest.mark.parametrize("motion, sign", [("rotate-cw", 1), ("rotate-ccw", -1)])
def test_rotation_turns_content_in_its_direction(motion, sign):
    # A square above the centre: turned clockwise (on screen) it moves right.
    frame = _square(left=48, top=8)
    x0, _ = _centroid(frame)
    x1, _ = _centroid(apply_motion(frame, motion, 0.5))
    assert np.sign(x1 - x0) == sign


def test_no_motion_returns_the_frame_untouched():
    frame = _square()
    assert apply_motion(frame, "none", 0.3) is frame


def test_canny_map_marks_the_edges_only():
    edges = control_map(_square(), RenderParams(prompt="x"))
    assert edges.shape == (128, 128, 3) and set(np.unique(edges)) == {0, 255}
    assert edges[56, 56].max() == 0  # inside the square: flat
    assert edges[40:72, 39:42].max() == 255  # its left edge


def test_colour_matching_moves_statistics_to_the_reference():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    drifted = np.clip(reference.astype(int) + [40, -30, 10], 0, 255).astype(np.uint8)
    fixed = match_colors(drifted, lab_stats(reference))
    ref_mean, _ = lab_stats(reference)
    assert np.abs(lab_stats(fixed)[0] - ref_mean).max() < 2.0
    assert np.abs(lab_stats(drifted)[0] - ref_mean).max() > 8.0


def test_keyframe_prompts_parse_and_reject_disorder():
    assert keyframes("a cat") == [(0, "a cat")]
    assert keyframes("0: a cat | 24: a tiger") == [(0, "a cat"), (24, "a tiger")]
    with pytest.raises(UserError, match="increasing"):
        keyframes("0: a cat | 0: a tiger")
    with pytest.raises(UserError, match="could not read"):
        keyframes("0: a cat | a tiger")


def test_prompt_schedule_blends_linearly_between_keys():
    plan = prompt_schedule([0, 4], 6)
    assert plan[0] == (0, 1, 0.0)
    assert plan[2] == (0, 1, 0.5)
    assert plan[4] == plan[5] == (1, 1, 0.0)


def test_frames_round_trip_and_stop_at_a_gap(tmp_path):
    frames = [np.full((16, 16, 3), i * 40, np.uint8) for i in range(3)]
    for i, frame in enumerate(frames):
        save_frame(tmp_path, i, frame)
    save_frame(tmp_path, 4, frames[0])  # after a gap: not part of the clip
    loaded = load_frames(tmp_path)
    assert len(loaded) == 3 and all((a == b).all() for a, b in zip(loaded, frames))
    # Nothing but the frames is left behind (no temp file of the atomic writer).
    assert sorted(path.name for path in tmp_path.iterdir()) == ["00000.png", "00001.png", "00002.png", "00004.png"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"frames": 500}, "frames must be between 1 and 240, got 500"),
        ({"width": 500}, "width must be a multiple of 8, got 500"),
        ({"motion": "spin"}, "unknown motion 'spin'"),
        ({"prompt": "  "}, "The prompt is empty"),
    ],
)
def test_bad_parameters_name_the_bad_value(change, message):
    with pytest.raises(UserError, match=message):
        RenderParams(**{"prompt": "a cat", **change}).validate()

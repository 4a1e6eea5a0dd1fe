"""``animabot render --safety check``: the worker's safety checks on a render alone, run as a user runs it.

The config names the built-in random checker (``[safety] model = "test-tiny"``); threshold 0 flags
every picture it looks at, threshold 1 none (its scores stay below 1)."""

import numpy as np
from PIL import Image
from test_cli import animabot

from engine.video.read import probe


def _config(tmp_path, threshold: float, *, model: str = "test-tiny"):
    path = tmp_path / "config.toml"
    path.write_text(f'[safety]\nmodel = "{model}"\nthreshold = {threshold}\nevery_k_frames = 2\n')
    return path


def _render(tmp_path, threshold: float, *args, model: str = "test-tiny"):
    out = tmp_path / "clip.mp4"
    done = animabot("--config", _config(tmp_path, threshold, model=model), "render", "a lighthouse",
                    "--model", "test-tiny", "--frames", 5, "--steps", 1, "--size", "64x64", "--seed", 3,
                    "-o", out, *args)  # fmt: skip
    return done, out


def test_a_render_that_passes_reports_what_was_checked(tmp_path):
    done, out = _render(tmp_path, 1, "--safety", "check")
    assert done.returncode == 0, done.stderr
    assert probe(out).frames == 5
    # frames 0, 2 and 4 (every 2nd, and the last)
    assert done.stdout.rstrip().endswith("; safety: 3 frames checked, 0 flagged")


def test_a_flagged_frame_0_stops_the_render_with_one_line_and_exit_code_2(tmp_path):
    done, out = _render(tmp_path, 0, "--safety", "check")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "animabot: The safety checker flagged frame 0 (threshold 0; 1 frame checked, 1 flagged); "
        "the render was stopped and nothing was written; try another prompt or seed."
    )
    assert done.stdout == "" and not out.exists()


def test_a_flagged_start_picture_stops_the_render_before_any_frame(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "start.png")
    done, out = _render(tmp_path, 0, "--safety", "check", "--image", tmp_path / "start.png")
    assert done.returncode == 2
    assert "flagged the start picture (threshold 0; 0 frames checked (and the start picture), 1 flagged)" in (
        done.stderr
    )
    assert "frames: 1/5" not in done.stderr and not out.exists()


def test_safety_off_is_the_default_and_checks_nothing(tmp_path):
    done, out = _render(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    assert "; safety:" not in done.stdout and probe(out).frames == 5


def test_check_without_a_checker_model_is_refused_before_anything_loads(tmp_path):
    done, out = _render(tmp_path, 0, "--safety", "check", model="")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "animabot: --safety check needs a safety checker; set [safety] model in the config "
        '(such as "CompVis/stable-diffusion-safety-checker") and enabled = true.'
    )
    assert not out.exists()

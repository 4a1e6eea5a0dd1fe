"""``animabot render`` with the clip options, ``--from``, ``info`` and ``metrics``, run as a user runs them."""

import json

import numpy as np
from support.clips import moving_square_frames
from test_cli import animabot

from engine.request.params import RenderParams
from engine.request.recipe import build_recipe
from engine.video.formats import write_clip
from engine.video.read import decode_frames, probe

TINY = ("--model", "test-tiny", "--frames", 3, "--fps", 8, "--steps", 2, "--size", "64x64")


def test_a_gif_pingpong_smooth_render_carries_its_recipe_and_renders_again_from_it(tmp_path):
    first = tmp_path / "cat.gif"
    done = animabot("render", "a cat on a wall", *TINY, "--seed", 5, "--loop", "pingpong", "--smooth", 2, "-o", first)
    assert done.returncode == 0, done.stderr
    frames = decode_frames(first)
    assert len(frames) == (2 * 3 - 2 - 1) * 2 + 1  # pingpong: 4 frames; smooth 2: 7
    assert abs(probe(first).fps - 16) < 1 and frames[0].shape == (64, 64, 3)  # GIF delays are in 1/100 s

    info = animabot("info", first)
    assert info.returncode == 0, info.stderr
    recipe = json.loads(info.stdout)
    assert recipe["params"]["prompt"] == "a cat on a wall" and recipe["params"]["seed"] == 5
    assert recipe["params"]["loop"] == "pingpong" and recipe["params"]["smooth"] == 2
    assert recipe["params"]["format"] == "gif"
    assert recipe["params"]["model"] == "test-tiny" and recipe["model_hub"] is None  # a built-in model: no hub id
    assert recipe["picture"] is False
    assert recipe["animabot"] == "0.1.0"

    again = tmp_path / "again.gif"
    done = animabot("render", "--from", first, "-o", again)
    assert done.returncode == 0, done.stderr
    assert all(np.array_equal(a, b) for a, b in zip(frames, decode_frames(again), strict=True))


def test_a_format_that_contradicts_the_output_name_is_refused_in_one_line(tmp_path):
    done = animabot("render", "a cat", "--model", "test-tiny", "--format", "gif", "-o", tmp_path / "x.mp4")
    assert done.returncode == 2
    assert done.stderr.startswith("animabot: The format gif does not match the file name x.mp4")
    assert done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_info_on_a_video_without_a_recipe_and_metrics_of_a_moving_square(tmp_path):
    plain = write_clip(moving_square_frames(8), tmp_path / "square.mp4", 8)
    done = animabot("info", plain)
    assert done.returncode == 2 and done.stderr == f"animabot: {plain} carries no animabot recipe.\n"
    done = animabot("metrics", plain)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert set(metrics) == {"frames", "fps", "warp_error_mean", "warp_error_max", "frame_diff_mean", "flicker_index"}
    assert metrics["frames"] == 8 and metrics["fps"] == 8


def test_render_from_a_recipe_this_host_cannot_follow_is_one_line(tmp_path):
    asked = RenderParams(prompt="a kite", seed=3, model="gone")
    for name, params, line in [
        ("gone.mp4", asked, "drawn by the model 'gone', which this host's config does not name"),
        (
            "picture.mp4",
            RenderParams(prompt="a kite", seed=3, image_key="a" * 64, image_strength=0.5),
            "started from a picture that its frame 0 re-draws (image strength 0.5), so the file does not hold it; "
            "give the picture with --image.",
        ),
    ]:
        video = write_clip(
            moving_square_frames(2), tmp_path / name, 8, recipe=build_recipe(params, model=None, controlnet=None)
        )
        done = animabot("render", "--from", video, "-o", tmp_path / "again.mp4")
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert done.stderr.startswith("animabot: ") and line in done.stderr
    assert not (tmp_path / "again.mp4").exists()

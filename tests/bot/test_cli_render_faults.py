"""The command line's mistakes and hostile files, each answered in one line with exit code 2 before
any model loads (a render that got as far as loading would have printed its header line first)."""

import json

import pytest
from support.clips import moving_square_frames
from test_cli import animabot

from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, engine_version
from engine.video.embedded_recipe import gif_with_comment, recipe_text
from engine.video.formats import write_clip

TINY = ("--model", "test-tiny", "--frames", 2, "--steps", 1, "--size", "64x64")


def _one_line(done, start: str = "animabot: ") -> str:
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(start), done.stderr
    return done.stderr


def _gif_with_comment(path, text: str):
    """A small GIF whose comment block holds ``text`` as it is (the recipe's place in a GIF)."""
    plain = write_clip(moving_square_frames(2), path, 8)
    path.write_bytes(gif_with_comment(plain.read_bytes(), text))
    return path


def _video_with_params(path, model_hub=None, **params):
    """A GIF whose recipe holds ``params`` as they are: any JSON, valid or not."""
    recipe = build_recipe(RenderParams(prompt="a kite", seed=3, model="test-tiny"), model=None, controlnet=None)
    recipe["params"].update(params)
    recipe["model_hub"] = model_hub
    return _gif_with_comment(path, recipe_text(recipe))


# -- the command line itself ----------------------------------------------------------------------
def test_version_is_the_packages():
    done = animabot("--version")
    assert done.returncode == 0 and done.stdout == f"animabot {engine_version()}\n"


def test_verbose_is_taken_before_or_after_the_sub_command_and_adds_the_traceback(tmp_path):
    missing = tmp_path / "missing.mp4"
    line = f"animabot: {missing} does not exist; give the path of a video file.\n"
    assert animabot("info", missing).stderr == line  # no traceback without -v
    for args in (("-v", "info", missing), ("info", missing, "-v"), ("info", "--verbose", missing)):
        done = animabot(*args)
        assert done.returncode == 2 and "Traceback" in done.stderr and done.stderr.endswith(line)


def test_render_help_shows_each_default():
    done = animabot("render", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps the help text
    for flag, default in [("--frames", "16"), ("--fps", "8"), ("--seed", "random"), ("--steps", "12"),
                          ("--guidance", "7.5"), ("--strength", "0.6"), ("--size", "512x512"),
                          ("--scheduler", "dpm++"), ("--loop", "none"), ("--smooth", "1")]:  # fmt: skip
        help_text = text.split(flag, 2)[2].split(" --", 1)[0]  # the option's own line, after its usage
        assert f"(default: {default})" in help_text, (flag, help_text)
    assert "a config's [render] section replaces them" in text


# -- -o, before anything loads --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("out", "line"),
    [
        ("missing/clip.mp4", "The folder {tmp}/missing does not exist; create it"),
        (".", "{tmp} is a folder; give -o a file name, such as {tmp}/clip.mp4."),
        ("/proc/clip.mp4", "animabot cannot write in /proc"),
        ("clip.avi", "The format '.avi' is not one animabot writes"),
    ],
    ids=["no-folder", "a-folder", "unwritable", "extension"],
)
def test_a_place_the_video_cannot_go_is_one_line_before_anything_loads(tmp_path, out, line):
    target = out if out.startswith("/") else tmp_path / out
    done = animabot("render", "a cat", *TINY, "-o", target)
    assert line.format(tmp=tmp_path) in _one_line(done)
    assert list(tmp_path.iterdir()) == []


# -- files that are not animabot videos -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["missing", "folder", "not-a-video", "no-recipe"])
def test_info_metrics_and_render_from_a_file_that_is_no_animabot_video_is_one_line(tmp_path, kind):
    path = tmp_path / "clip.mp4"
    if kind == "folder":
        path.mkdir()
    elif kind == "not-a-video":
        path.write_text("just some notes\n")
    elif kind == "no-recipe":
        write_clip(moving_square_frames(2), path, 8)
    expected = {
        "missing": f"{path} does not exist; give the path of a video file.",
        "folder": f"{path} is a folder; give the path of a video file.",
        "not-a-video": f"{path} carries no animabot recipe.",
        "no-recipe": f"{path} carries no animabot recipe.",
    }[kind]
    assert _one_line(animabot("info", path)) == f"animabot: {expected}\n"
    assert _one_line(animabot("render", "--from", path, "-o", tmp_path / "again.mp4")) == f"animabot: {expected}\n"
    if kind != "no-recipe":  # a video without a recipe has metrics
        metrics = "clip.mp4 is not a video or audio file" if kind == "not-a-video" else expected
        assert metrics in _one_line(animabot("metrics", path))
    assert not (tmp_path / "again.mp4").exists()


# -- hostile files (issue 20, defect 7) -----------------------------------------------------------
def test_a_recipes_model_must_be_configured_or_given_with_model(tmp_path):
    video = _video_with_params(tmp_path / "hub.gif", model="evil", model_hub="evil/weights")
    line = _one_line(animabot("render", "--from", video, "-o", tmp_path / "again.gif"))
    assert "drawn by the model 'evil', which this host's config does not name" in line
    assert "give --model (its hub id is evil/weights: --model evil/weights uses it)" in line
    # --model given: the recipe's model is not asked for (the next check, frames, answers instead).
    done = animabot("render", "--from", video, "--model", "test-tiny", "--frames", 0, "-o", tmp_path / "again.gif")
    assert "frames must be between 1 and 240, got 0." in _one_line(done)


@pytest.mark.parametrize(
    ("params", "line"),
    [
        ({"steps": "x"}, "steps"),
        ({"frames": [1]}, "frames"),
        ({"loras": {"a": 1}}, "loras must be a list"),
        ({"image_strength": "x"}, "image strength"),
        ({"negative_prompt": ["a", "b"]}, "negative prompt"),
        ({"color_coherence": "yes"}, "color coherence"),
    ],
    ids=["steps", "frames", "loras", "image-strength", "negative", "coherence"],
)
def test_a_recipe_of_crafted_types_is_one_line(tmp_path, params, line):
    video = _video_with_params(tmp_path / "crafted.gif", **params)
    assert line in _one_line(animabot("render", "--from", video, "-o", tmp_path / "again.gif"))


def test_a_deeply_nested_or_huge_recipe_is_one_line(tmp_path):
    nested = '{"animabot":"0.1.0","params":' + "[" * 100_000 + "]" * 100_000 + "}"
    huge = recipe_text(
        build_recipe(RenderParams(prompt="a cat " * 1_750_000, seed=1, model="test-tiny"), model=None, controlnet=None)
    )  # a 10 MB prompt
    for name, text, line in [("nested.gif", nested, "nested too deeply"), ("huge.gif", huge, "more than any")]:
        video = _gif_with_comment(tmp_path / name, text)
        for args in (("info", video), ("render", "--from", video, "-o", tmp_path / "again.gif")):
            assert line in _one_line(animabot(*args))


def test_control_characters_from_a_file_never_reach_the_terminal(tmp_path):
    hostile = "a \x1b[2Jkite\r\x9b31m\u202eevil\x00"
    video = _video_with_params(tmp_path / "escapes.gif", prompt=hostile, negative_prompt=hostile, model=hostile)
    done = animabot("info", video)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"]["prompt"] == "a kite31mevil"  # the lone C1 CSI byte goes, not "31m"
    done = animabot("render", "--from", video, "-o", tmp_path / "again.gif")
    assert "model must not hold control characters" in _one_line(done)  # refused, its escapes shown as escapes
    for output in (done.stdout + done.stderr, animabot("info", video).stdout):
        assert not set(output) & {"\x1b", "\r", "\x9b", "\u202e", "\x00"}


def test_a_keyframe_past_the_clip_is_one_line_naming_it_and_the_clips_length(tmp_path):
    done = animabot("render", "0: a cat | 99: a tiger", *TINY, "--frames", 8, "-o", tmp_path / "x.mp4")
    assert _one_line(done) == (
        "animabot: The keyframe at frame 99 is past the end of the clip, which has 8 frames (0 to 7); "
        "give more frames or an earlier keyframe.\n"
    )

"""The clip options of RenderParams (loop, smooth, format), the recipe built from them, and the guild fps fit."""

import dataclasses

import pytest

from bot.guild_limits import GuildLimits, lower_smooth
from engine.errors import UserError
from engine.request import params as params_module
from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, recipe_params, render_command
from engine.video import formats, interpolate

BASE = RenderParams(prompt="a kite", seed=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loop": "spiral"}, "unknown loop 'spiral'; choose one of: none, pingpong, seamless."),
        ({"smooth": 3}, "smooth must be one of 1, 2, 4, got 3."),
        ({"format": "avi"}, "unknown format 'avi'; choose one of: mp4, gif, webp."),
    ],
)
def test_bad_clip_options_are_named_in_one_sentence(change, message):
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        dataclasses.replace(BASE, **change).validate()


def test_the_choices_are_those_the_video_layer_writes():
    assert params_module.SMOOTH_FACTORS == interpolate.SMOOTH_FACTORS
    assert params_module.FORMATS == tuple(formats.FORMATS)


def test_output_fps_and_summary():
    clip = dataclasses.replace(BASE, fps=8, smooth=4, loop="pingpong", format="gif")
    assert clip.output_fps == 32
    assert clip.summary().endswith("loop pingpong, smooth ×4 (32 fps), GIF")


def test_smoothing_is_lowered_to_the_guild_max_fps():
    limits = GuildLimits(max_fps=24)
    assert lower_smooth(limits, dataclasses.replace(BASE, fps=8, smooth=4)).smooth == 2
    assert lower_smooth(limits, dataclasses.replace(BASE, fps=16, smooth=2)).smooth == 1
    kept = dataclasses.replace(BASE, fps=6, smooth=4)
    assert lower_smooth(limits, kept) is kept


def test_the_recipe_round_trips_and_spells_a_render_command():
    params = dataclasses.replace(BASE, negative_prompt="fog", smooth=2, format="webp")
    recipe = build_recipe(params, model="org/sd", controlnet="org/cn", job_id=5)
    assert recipe_params(recipe) == params and recipe["picture"] is False and recipe["job"] == 5
    line = render_command(recipe)
    assert line.startswith("animabot render 'a kite' --negative fog --frames 16")
    assert "--seed 3" in line and "--model default" in line and "--smooth 2 --format webp --size 512x512" in line
    with pytest.raises(UserError):
        recipe_params({"comment": "someone else's"})

"""Integer settings are whole numbers, whichever way a render enters (issue 20, defect 1)."""

import dataclasses

import pytest

from engine.errors import UserError
from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, recipe_params

GOOD = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 2.5, "steps must be a whole number, got 2.5."),
        ("frames", 3.0, "frames must be a whole number, got 3.0."),
        ("width", "64", "width must be a whole number, got '64'."),
        ("seed", 1.5, "seed must be a whole number, got 1.5."),
        ("canny_low", True, "canny low must be a whole number, got true."),  # as JSON and TOML spell it
        ("smooth", 2.0, "smooth must be a whole number, got 2.0."),
        ("fps", float("nan"), "fps must be a whole number, got nan."),
    ],
)
def test_an_int_field_refuses_anything_but_an_int_naming_the_field(field, value, message):
    with pytest.raises(UserError) as err:
        dataclasses.replace(GOOD, **{field: value}).validate()
    assert str(err.value) == message


def test_a_stored_row_keeps_a_fraction_for_validate_to_refuse_and_reads_a_whole_float_as_its_int():
    read = RenderParams.from_dict({**GOOD.to_dict(), "steps": 2.5, "frames": 3.0})
    assert (read.steps, read.frames, type(read.frames)) == (2.5, 3, int)
    with pytest.raises(UserError, match=r"^steps must be a whole number, got 2\.5\.$"):
        read.validate()


def test_a_recipe_with_fractional_steps_is_refused_in_one_sentence():
    recipe = build_recipe(GOOD, model=None, controlnet=None)
    recipe["params"]["steps"] = 2.5
    with pytest.raises(UserError) as err:
        recipe_params(recipe)
    assert str(err.value) == "steps must be a whole number, got 2.5."

"""A recipe carries no key to a member's stored picture (issue 20): it only says the clip began from one."""

import dataclasses

from engine.request.params import RenderParams
from engine.request.recipe import PICTURE_NOT_IN_FILE, build_recipe, recipe_params, render_command

KEY = "ab" * 32
CLIP = RenderParams(prompt="a kite", seed=3, image_key=KEY, image_strength=0.9)


def test_a_recipe_says_it_began_from_a_picture_without_its_key():
    recipe = build_recipe(CLIP, model=None, controlnet=None, job_id=4)
    assert recipe["picture"] is True and "image_key" not in recipe["params"] and KEY not in str(recipe)
    assert recipe["params"]["image_strength"] == 0.9
    assert (
        build_recipe(dataclasses.replace(CLIP, image_key=None, image_strength=0), model=None, controlnet=None)[
            "picture"
        ]
        is False
    )


def test_a_key_read_from_a_file_never_names_a_stored_picture():
    ours = build_recipe(CLIP, model=None, controlnet=None)
    older = {**ours, "params": {**ours["params"], "image_key": KEY}}  # recipe v2 as files already shared carry it
    for recipe in (ours, older):
        params = recipe_params(recipe)
        assert params.image_key == PICTURE_NOT_IN_FILE and params.image_strength == 0.9
        assert render_command(recipe) is None  # the picture is not in the file: no command line renders it
    assert recipe_params(older, image_key=KEY).image_key == KEY  # only a caller that has the picture sets one

"""The Info button's text and ``render --from``'s model, from recipes of version 2 and of version 1."""

import dataclasses
import shlex

import pytest

from bot.cli.main import build_parser
from bot.cli.recipe_file import recipe_model
from bot.text.info import info_text
from engine.errors import UserError
from engine.request.catalog import build_catalog
from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, recipe_weights

CLIP = RenderParams(prompt="a kite", seed=3, model="second", loras=(("ink", 0.5),), control="depth")
CATALOG = build_catalog("org/sd", {"second": {"model": "test-tiny-2"}}, {})
# A recipe animabot 0.1.0's worker wrote for a job of the model "second": it named the [engine] model.
V1 = {
    "animabot": "0.1.0", "recipe": 1, "job": 7, "params": {"prompt": "a kite", "seed": 3, "model": "second"},
    "model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "model_revision": None,
    "controlnet": "lllyasviel/control_v11p_sd15_canny", "controlnet_revision": None, "picture": False,
}  # fmt: skip


def test_info_names_the_model_and_controlnet_as_the_host_did_and_shows_every_flag():
    text = info_text(build_recipe(CLIP, model="org/second", controlnet="org/depth", job_id=42))
    assert text.startswith("**Recipe of job 42**")
    assert "Model `second` (`org/second`) · depth ControlNet `org/depth` · start picture: no" in text
    command = text.split("```\n")[1].split("\n```")[0]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.model, args.lora, args.control, args.color_coherence) == ("second", ["ink:0.5"], "depth", True)


def test_info_of_a_clip_from_a_picture_says_no_command_line_renders_it_again():
    from_picture = dataclasses.replace(CLIP, image_key="a" * 64, image_strength=0.3)
    text = info_text(build_recipe(from_picture, model="org/second", controlnet=None, job_id=42))
    assert "start picture: yes" in text and "```" not in text
    assert "the recipe does not carry" in text and "--image PICTURE" in text


def test_a_version_1_recipe_still_reads_without_the_default_models_id_for_another_model():
    weights = recipe_weights(V1)
    assert (weights.model, weights.model_hub) == ("second", None)
    assert weights.controlnet_hub == "lllyasviel/control_v11p_sd15_canny"
    assert recipe_weights({**V1, "params": {**V1["params"], "model": "default"}}).model_hub == V1["model"]
    text = info_text(V1)
    assert "Model `second` · canny ControlNet `lllyasviel/control_v11p_sd15_canny`" in text
    assert "--model second" in text


def test_render_from_takes_the_recipes_model_by_name_and_never_fetches_a_hub_id_it_names():
    def recipe(model, hub):
        return build_recipe(dataclasses.replace(CLIP, model=model), model=hub, controlnet=None)

    assert recipe_model(recipe("second", "org/second"), CATALOG) == "second"  # the host's own, by name
    assert recipe_model(V1, CATALOG) == "second"
    assert recipe_model(recipe("test-tiny", None), CATALOG) == "test-tiny"  # built in: nothing to fetch
    with pytest.raises(UserError, match=r"model 'gone', which this host's config does not name.*--model org/gone"):
        recipe_model(recipe("gone", "org/gone"), CATALOG)  # a file from anyone names any repository
    with pytest.raises(UserError, match=r"model 'gone'.*add it under \[models\] or give --model\.$"):
        recipe_model(recipe("gone", None), CATALOG)

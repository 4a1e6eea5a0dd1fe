"""The torch-free catalog: config tables, LoRA specs, batch keys, the JSON of a job's model and LoRAs."""

import dataclasses
import json

import pytest

from engine.config import load_config
from engine.errors import UserError
from engine.request.catalog import build_catalog, parse_lora_specs
from engine.request.params import RenderParams

CLIP = RenderParams(prompt="a cat", width=64, height=64)


def test_the_model_and_loras_survive_the_job_store_json_so_rerolls_and_recipes_keep_them():
    params = dataclasses.replace(CLIP, model="realistic", loras=(("pixel", 0.8), ("ink", -0.5)))
    again = RenderParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params and again.batch_key() == params.batch_key()


def test_only_the_same_model_and_the_same_loras_at_the_same_weights_share_a_batch_key():
    keys = {
        CLIP.batch_key(),
        dataclasses.replace(CLIP, model="other").batch_key(),
        dataclasses.replace(CLIP, loras=(("pixel", 0.8),)).batch_key(),
        dataclasses.replace(CLIP, loras=(("pixel", 0.5),)).batch_key(),
    }
    assert len(keys) == 4 and CLIP.batch_key() == "64x64 canny"  # the default model adds nothing to size + control
    two = dataclasses.replace(CLIP, loras=(("a", 1.0), ("b", 0.5)))
    assert two.batch_key() == dataclasses.replace(CLIP, loras=(("b", 0.5), ("a", 1.0))).batch_key()


def test_lora_specs_parse_names_and_weights_and_refuse_what_is_malformed():
    assert parse_lora_specs(" pixel:0.6, ink ") == [("pixel", 0.6), ("ink", None)]
    with pytest.raises(UserError, match="could not read 'pixel:x'"):
        parse_lora_specs("pixel:x")
    with pytest.raises(UserError, match="between -2 and 2, got 3.0"):
        parse_lora_specs("pixel:3")
    with pytest.raises(UserError, match="named once"):
        parse_lora_specs("a, a:0.5")


def test_triggers_are_added_to_every_keyframe():
    catalog = build_catalog("m", {}, {"pixel": {"file": "p.safetensors", "trigger": "pixel art"}})
    prompt = catalog.prompt_with_triggers("0: a cat | 8: a dog", [("pixel", 1.0)])
    assert prompt == "0: a cat, pixel art | 8: a dog, pixel art"


def test_config_tables_with_a_bad_name_or_key_are_refused_at_load(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[models.realistic]\nfile = "x.safetensors"\n')
    with pytest.raises(UserError, match=r"unknown key file in \[models.realistic\]"):
        load_config(path)
    path.write_text('[models.default]\nmodel = "x"\n')
    with pytest.raises(UserError, match="the name default is the \\[engine\\] model"):
        load_config(path)
    path.write_text('[loras."bad name"]\nfile = "x"\n')
    with pytest.raises(UserError, match=r"\[loras.bad name\]: a name is 1 to 40"):
        load_config(path)


def test_model_choices_put_prefix_matches_first_then_substring_matches():
    catalog = build_catalog("m", {"anime": {"model": "a"}, "realistic-anime": {"model": "b"}}, {})
    assert catalog.model_choices("anim") == ["anime", "realistic-anime"]
    assert catalog.model_choices("", ["default", "anime"]) == ["default", "anime"]


def test_the_command_line_takes_a_configured_name_else_a_hub_id_a_path_or_a_name_it_is_told_is_built_in(tmp_path):
    catalog = build_catalog("m", {"anime": {"model": "a"}}, {})
    assert catalog.for_command_line("anime", ("built",)) == (catalog, "anime")
    for value in ("org/name", str(tmp_path), "built"):
        extended, name = catalog.for_command_line(value, ("built",))
        assert (
            name == value and extended.model(value).model == value and list(extended.models)[:2] == ["default", "anime"]
        )
    with pytest.raises(UserError, match=r"an existing path or a built-in model \(built, other\)\.$"):
        catalog.for_command_line("nosuch", ("built", "other"))
    with pytest.raises(UserError, match=r"else give a hub id \(org/name\), an existing path\.$"):
        catalog.for_command_line("built")  # the catalog itself knows no built-in model

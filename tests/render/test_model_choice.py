"""Models and LoRAs by name on the CPU: single-file checkpoints, LoRAs in two layouts, the LRU of loaded models."""

import dataclasses

import numpy as np
import pytest
import torch
from support import tiny_checkpoints

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.chain import render_frames
from engine.render.weights.model_cache import ModelCache
from engine.render.weights.models import load_model
from engine.render.weights.weights_check import check_catalog
from engine.request.catalog import build_catalog
from engine.request.params import RenderParams

TINY = EngineConfig(model="test-tiny", device="cpu")
CLIP = RenderParams(prompt="a cat", frames=2, steps=2, width=64, height=64, seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {
        "single": tiny_checkpoints.save_single_file(folder / "tiny2.safetensors"),
        "diffusers": tiny_checkpoints.save_diffusers_lora(folder / "lora-diffusers.safetensors"),
        "kohya": tiny_checkpoints.save_kohya_lora(folder / "lora-kohya.safetensors"),
    }


@pytest.fixture(scope="module")
def catalog(files):
    return build_catalog(
        "test-tiny",
        {"second": {"model": "test-tiny-2"}, "single": {"model": str(files["single"])}},
        {
            "ink": {"file": str(files["diffusers"]), "weight": 0.8, "trigger": "ink drawing"},
            "kohya": {"file": str(files["kohya"])},
        },
    )


def _frames(loaded, catalog, params):
    loaded.use_loras(catalog, params.loras)
    return list(render_frames(loaded.components, params))


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_single_file_checkpoint_loads_the_weights_of_the_diffusers_folder_it_was_written_from(catalog):
    single = load_model(catalog.model("single"), TINY)
    folder = load_model(catalog.model("second"), TINY)
    for name in ("unet", "vae", "text_encoder"):
        mine, theirs = getattr(single, name).state_dict(), getattr(folder, name).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k].reshape(theirs[k].shape), theirs[k]) for k in theirs)


def test_a_second_model_draws_other_frames(catalog):
    cache = ModelCache(catalog, TINY)
    assert not _same(_frames(cache.get("default"), catalog, CLIP), _frames(cache.get("second"), catalog, CLIP))


def test_a_lora_at_weight_0_draws_what_no_lora_does_and_at_weight_1_changes_the_frames(catalog):
    cache = ModelCache(catalog, TINY)
    loaded = cache.get("default")
    plain = _frames(loaded, catalog, CLIP)
    zero = _frames(loaded, catalog, dataclasses.replace(CLIP, loras=(("ink", 0.0),)))
    one = _frames(loaded, catalog, dataclasses.replace(CLIP, loras=(("ink", 1.0),)))
    after = _frames(loaded, catalog, CLIP)  # nothing of the LoRA stays on for the next job
    assert _same(plain, zero) and _same(plain, after)
    assert not _same(plain, one)


def test_the_kohya_layout_of_a_lora_draws_what_the_diffusers_layout_does(catalog):
    cache = ModelCache(catalog, TINY)
    loaded = cache.get("default")
    ink = _frames(loaded, catalog, dataclasses.replace(CLIP, loras=(("ink", 1.0),)))
    kohya = _frames(loaded, catalog, dataclasses.replace(CLIP, loras=(("kohya", 1.0),)))
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(ink, kohya))


def test_the_cache_evicts_the_least_recently_used_model_and_reloads_it_when_asked_again(catalog):
    cache = ModelCache(catalog, TINY, max_loaded=2)
    first = cache.get("default")
    cache.get("second")
    assert cache.get("default") is first  # a hit: moves default to most recently used
    cache.get("single")  # full: "second" was used least recently
    assert cache.loaded == ["default", "single"] and cache.loads == 3
    again = cache.get("second")
    assert cache.loaded == ["single", "second"] and cache.loads == 4
    assert _same(_frames(again, catalog, CLIP), _frames(ModelCache(catalog, TINY).get("second"), catalog, CLIP))


def test_an_unknown_model_names_the_configured_ones(catalog):
    with pytest.raises(UserError, match=r"There is no model 'nosuch'; choose one of: default, second, single\."):
        ModelCache(catalog, TINY).get("nosuch")


def test_a_broken_safetensors_file_is_one_sentence_at_the_check(catalog, files, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(files["single"].read_bytes()[:5000])
    bad = build_catalog("test-tiny", {"broken": {"model": str(broken)}}, {})
    with pytest.raises(UserError, match=r"model broken, .*broken\.safetensors, is (truncated|not a readable)"):
        check_catalog(bad, None)
    assert len(check_catalog(catalog, None)) == 3


def test_a_lora_given_as_a_model_is_refused_as_not_sd15(files):
    wrong = build_catalog("test-tiny", {"wrong": {"model": str(files["diffusers"])}}, {})
    with pytest.raises(UserError, match="not a Stable Diffusion 1.5 checkpoint"):
        check_catalog(wrong, None)
    with pytest.raises(UserError, match="not a Stable Diffusion 1.5 checkpoint"):
        load_model(wrong.model("wrong"), TINY)


def test_a_checkpoint_of_another_width_is_refused_with_its_width(catalog, files):
    with pytest.raises(UserError, match="cross-attention width is 32, the base model's is 768"):
        check_catalog(catalog, 768)

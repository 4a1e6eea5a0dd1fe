"""The tiny random models (engine/tiny.py) and loading them like real weights (engine/models.py)."""

import json
import threading

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from PIL import Image

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights import builtin, models, tiny

TINY = EngineConfig(model="test-tiny", device="cpu")
MODULES = ("unet", "controlnet", "vae", "text_encoder")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def components():
    return models.load_components(TINY)


# -- building ------------------------------------------------------------------------------------
def test_same_seed_builds_the_same_weights():
    first, second, other = tiny.build_components(seed=0), tiny.build_components(seed=0), tiny.build_components(seed=1)
    for name in MODULES:
        assert _same_weights(first[name], second[name]), name
        assert not _same_weights(first[name], other[name]), name


def test_tiny_has_the_real_structure():
    parts = tiny.build_components()
    vae, unet, text = parts["vae"].config, parts["unet"].config, parts["text_encoder"].config
    assert 2 ** (len(vae.block_out_channels) - 1) == 8  # 512x512 image → 64x64 latents
    assert vae.latent_channels == unet.in_channels == unet.out_channels == 4
    assert unet.cross_attention_dim == text.hidden_size
    assert unet.down_block_types[-1] == "CrossAttnDownBlock2D" and unet.down_block_types[0] == "DownBlock2D"
    assert parts["controlnet"].config.block_out_channels == unet.block_out_channels
    scheduler = parts["scheduler"].config
    assert (scheduler.beta_start, scheduler.beta_end, scheduler.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (scheduler.num_train_timesteps, scheduler.steps_offset, scheduler.algorithm_type) == (1000, 1, "dpmsolver++")


def test_tokenizer_is_byte_level_clip_and_matches_the_text_config():
    parts = tiny.build_components()
    tokenizer, text = parts["tokenizer"], parts["text_encoder"].config
    assert type(tokenizer).__name__ == "CLIPTokenizer"
    assert len(tokenizer) == text.vocab_size == 514
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (512, 513, 513)
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (512, 513, 513)
    assert tokenizer.model_max_length == text.max_position_embeddings == 77
    ids = tokenizer("A cat!").input_ids
    assert ids[0] == 512 and ids[-1] == 513 and len(ids) == 2 + len("a cat!") - 1  # one token per byte, no space token
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a cat !"
    padded = tokenizer("x " * 200, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    assert padded.input_ids.shape == (1, 77)


def test_sd15_shape_has_the_real_sizes():
    # Built on the meta device: sizes without memory or time.
    with torch.device("meta"):
        unet, vae, text = tiny.build_unet("sd15"), tiny.build_vae("sd15"), tiny.build_text_encoder("sd15")
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=False)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(unet) == 859_520_964  # stable-diffusion-v1-5 unet/
    assert count(vae) == 83_653_863  # stable-diffusion-v1-5 vae/
    assert count(text) == 123_060_480 - (49408 - 514) * 768  # CLIP ViT-L/14 text, byte vocab
    assert count(controlnet) == pytest.approx(361.28e6, rel=1e-3)
    with pytest.raises(ValueError, match="shape must be one of"):
        tiny.build_unet("sdxl")


def test_save_test_tiny_writes_diffusers_repos(tmp_path):
    root = tiny.save_test_tiny(tmp_path)
    sd, cn = root / "sd", root / "controlnet"
    for path in (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
    ):
        assert (sd / path).is_file(), path
    assert (cn / "config.json").is_file() and (cn / "diffusion_pytorch_model.safetensors").is_file()
    index = json.loads((sd / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    assert not list(root.rglob("*.bin"))


def test_save_test_tiny_saves_the_weights_in_the_dtype_asked_and_they_load_back_as_saved(tmp_path):
    from safetensors import safe_open

    root = tiny.save_test_tiny(tmp_path, dtype=torch.float16)
    for path in (
        "sd/unet/diffusion_pytorch_model.safetensors",
        "sd/vae/diffusion_pytorch_model.safetensors",
        "sd/text_encoder/model.safetensors",
        "controlnet/diffusion_pytorch_model.safetensors",
    ):
        with safe_open(root / path, "pt") as weights:
            assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F16"}, path
    built = tiny.build_components(seed=0)["controlnet"].half()
    assert _same_weights(ControlNetModel.from_pretrained(root / "controlnet", dtype=torch.float16), built)


# -- loading -------------------------------------------------------------------------------------
def test_loads_through_from_pretrained_with_the_built_weights(components):
    built = tiny.build_components(seed=0)
    for name in MODULES:
        module = getattr(components, name)
        assert _same_weights(module, built[name]), name
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
        assert next(module.parameters()).device.type == "cpu" and next(module.parameters()).dtype == torch.float32
    assert components.device == torch.device("cpu") and components.dtype == torch.float32
    assert components.scheduler_config["algorithm_type"] == "dpmsolver++"
    assert components.tokenizer.eos_token_id == 513


def test_load_components_is_cached(components):
    assert models.load_components(TINY) is components
    assert models.load_components(TINY, device="cpu") is components
    # With test-tiny, a ControlNet that is not a local folder means the tiny one: same load.
    assert (
        models.load_components(EngineConfig(model="test-tiny", controlnet="lllyasviel/x", device="cpu")) is components
    )
    assert hash(components) == hash(components)


def _render(pipe, **kwargs):
    generator = torch.Generator("cpu").manual_seed(7)
    out = pipe(
        "a red cube", num_inference_steps=2, height=64, width=64, generator=generator, output_type="np", **kwargs
    )
    return out.images


def test_pipeline_renders_64px_in_two_steps_deterministically(components):
    control = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3)))
    first = _render(components.pipeline(), image=control)
    second = _render(components.pipeline(), image=control)
    assert first.shape == (1, 64, 64, 3) and np.isfinite(first).all()
    assert np.array_equal(first, second)
    assert 0.0 <= first.min() and first.max() <= 1.0


def test_pipelines_share_modules_but_not_schedulers(components):
    text2img, img2img = components.pipeline(), components.img2img_pipeline()
    for name in MODULES + ("tokenizer",):
        assert getattr(text2img, name) is getattr(components, name) is getattr(img2img, name), name
    assert text2img.scheduler is not img2img.scheduler
    assert text2img.safety_checker is None and img2img.safety_checker is None
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    frame = _render(img2img, image=init, control_image=init, strength=0.5)
    assert frame.shape == (1, 64, 64, 3)
    assert next(components.unet.parameters()).dtype == torch.float32


def test_test_tiny_is_built_once_by_concurrent_builders(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMABOT_CACHE", str(tmp_path))
    results, errors = [], []

    def build():
        try:
            results.append(builtin.built_folder())
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results[0] == results[1]
    assert (results[0] / "sd" / "model_index.json").is_file()
    assert [p.name for p in results[0].parent.iterdir()] == [tiny.fingerprint()]  # no half-built leftovers
    assert builtin.built_folder() == results[0]


# -- settings and errors -------------------------------------------------------------------------
def test_resolve_device_and_dtype():
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.resolve_device("auto").type == expected
    with pytest.raises(UserError, match="got 'gpu'"):
        models.resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            models.resolve_device("cuda:0")
    assert models.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert models.resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert models.resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(UserError, match="got 'fp8'"):
        models.resolve_dtype("fp8", torch.device("cpu"))


def test_folder_without_model_index_is_a_user_error(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="model_index.json"):
        models.load_components(EngineConfig(model=str(tmp_path), device="cpu"))


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        models.load_components(EngineConfig(model=str(tmp_path / "nope" / "sd"), controlnet="test-tiny", device="cpu"))

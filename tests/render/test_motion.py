"""AnimateDiff motion (``engine.render.motion``) on the CPU with test-tiny and the test-tiny adapter:
one window equals diffusers' ``AnimateDiffControlNetPipeline``; windows, resume and cancel of a clip."""

import dataclasses
import threading

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffControlNetPipeline
from PIL import Image

from engine.render import motion, sampler
from engine.render.steps.control import control_map
from engine.request.params import RenderParams

BASE = RenderParams(
    prompt="a cat", frames=6, steps=2, width=64, height=64, seed=5, coherence="motion", motion="pan-left"
)


@pytest.fixture(scope="module")
def adapter(components):
    return motion.load_adapter("test-tiny", components.dtype, components.device, local_files_only=True)


@pytest.fixture(scope="module")
def unet(components, adapter):
    return motion.motion_unet(components.unet, adapter)


def _picture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[16:48, 16:48] = rng.integers(0, 256, (32, 32, 3))
    return picture


def test_one_window_equals_animatediff_controlnet_pipeline(components, adapter, unet):
    params = dataclasses.replace(BASE, frames=5, guidance=6.0, control_scale=0.8)
    picture = _picture()
    maps = motion.window_controls(picture, [], params.frames, params)
    assert maps.shape == (5, 64, 64, 3)
    ours = np.stack(list(motion.render_motion(components, unet, params, picture=picture)))

    pipe = AnimateDiffControlNetPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        motion_adapter=adapter,
        controlnet=components.controlnet,
        scheduler=sampler.make_scheduler("dpm++", components.scheduler_config, 2, components.device)[0],
    )
    pipe.set_progress_bar_config(disable=True)
    cond, negative = components.shared_pipeline.encode_prompt(
        "a cat", components.device, 1, True, negative_prompt=params.negative_prompt or None
    )
    noise = motion.window_noise(params.seed, 0, params.frames, 64, 64)
    video = pipe(
        num_frames=params.frames,
        height=64,
        width=64,
        num_inference_steps=params.steps,
        guidance_scale=params.guidance,
        prompt_embeds=cond,
        negative_prompt_embeds=negative,
        conditioning_frames=[Image.fromarray(m) for m in maps],
        controlnet_conditioning_scale=params.control_scale,
        latents=noise,
        output_type="np",
    ).frames[0]
    theirs = np.round(video * 255).astype(np.int16)
    assert ours.shape == theirs.shape == (5, 64, 64, 3)
    assert np.abs(ours.astype(np.int16) - theirs).max() <= 1
    assert not np.array_equal(ours[0], ours[-1])  # the frames differ: the window really is 5 frames


def test_windows_hold_the_previous_windows_last_frames():
    assert motion.windows(5) == [(0, 5)]
    assert motion.windows(16) == [(0, 16)]
    assert motion.windows(20) == [(0, 16), (12, 20)]
    assert motion.windows(40) == [(0, 16), (12, 28), (24, 40)]


def test_control_images_follow_the_motion_preset():
    params = BASE
    picture = _picture(1)
    maps = motion.window_controls(picture, [], 3, params)
    moved = picture
    for i in range(3):
        assert np.array_equal(maps[i], control_map(moved, params))
        moved = motion.apply_motion(moved, params.motion, params.motion_amount)
    assert motion.window_controls(None, [], 3, params) is None
    held = [_picture(2), _picture(3)]
    later = motion.window_controls(held[-1], held, 4, params)
    assert np.array_equal(later[1], control_map(held[1], params))
    assert np.array_equal(later[2], control_map(motion.apply_motion(held[1], "pan-left", params.motion_amount), params))


def test_a_clip_of_several_windows_resumes_at_its_last_finished_window(components, unet, monkeypatch):
    monkeypatch.setattr(motion, "WINDOW", 4)
    monkeypatch.setattr(motion, "OVERLAP", 2)
    params = dataclasses.replace(BASE, frames=7)
    assert motion.windows(7) == [(0, 4), (2, 6), (4, 7)]
    steps = []
    whole = list(motion.render_motion(components, unet, params, on_step=lambda k, n: steps.append((k, n))))
    assert len(whole) == 7 and steps == [(1, 2), (2, 2)] * 3
    assert not np.array_equal(whole[3], whole[4])
    # Saved up to frame 5 (window 2 ends at 6): window (2, 6) is re-drawn from frames 2-3, frame 5 onward is new.
    resumed = list(motion.render_motion(components, unet, params, frames=whole[:5]))
    assert len(resumed) == 2
    for ours, theirs in zip(resumed, whole[5:]):
        assert np.abs(ours.astype(np.int16) - theirs).max() <= 1


def test_cancel_stops_before_the_next_step(components, unet):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(sampler.Cancelled):
        next(motion.render_motion(components, unet, BASE, cancel=cancel))


def test_without_a_picture_the_controlnet_is_not_used(components, unet):
    params = dataclasses.replace(BASE, frames=3)
    plain = list(motion.render_motion(components, unet, params))
    unscaled = list(motion.render_motion(components, unet, dataclasses.replace(params, control_scale=0.0)))
    assert all(np.array_equal(a, b) for a, b in zip(plain, unscaled))
    assert len(plain) == 3
    assert torch.is_tensor(motion.window_noise(1, 0, 3, 64, 64))


def test_a_unet_with_lora_layers_gives_the_motion_unet_of_the_plain_one(tmp_path, adapter):
    from support import tiny_checkpoints

    from engine.config import EngineConfig
    from engine.render.weights.model_cache import ModelCache
    from engine.request.catalog import build_catalog

    lora = tiny_checkpoints.save_diffusers_lora(tmp_path / "ink.safetensors")
    catalog = build_catalog("test-tiny", {}, {"ink": {"file": str(lora)}})
    loaded = ModelCache(catalog, EngineConfig(model="test-tiny", device="cpu", compile=False)).get("default")
    plain = motion.motion_unet(loaded.components.unet, adapter).state_dict()
    loaded.use_loras(catalog, (("ink", 1.0),))
    loaded.use_loras(catalog, ())  # loaded, not active: peft layers stay in the UNet
    assert any(".base_layer." in key for key in loaded.components.unet.state_dict())
    again = motion.motion_unet(loaded.components.unet, adapter).state_dict()
    assert again.keys() == plain.keys() and all(torch.equal(again[k], plain[k]) for k in plain)


def test_models_list_names_the_motion_adapter():
    from engine.config import EngineConfig
    from engine.render.weights.inventory import describe_catalog
    from engine.request.catalog import build_catalog

    catalog = build_catalog("test-tiny", {}, {})
    lines = describe_catalog(catalog, EngineConfig(model="test-tiny", motion_adapter="test-tiny"))
    assert lines[-1].split() == ["motion", "adapter", "test-tiny", "present", "(built", "in", "code)"]
    assert not any(line.startswith("motion") for line in describe_catalog(catalog, EngineConfig(model="test-tiny")))

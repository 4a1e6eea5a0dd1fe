"""The sampler computes what the diffusers pipelines compute (the claim in engine/render/sampler.py).

One task at a time, test-tiny in float32 on the CPU, the same prompt, seed (a CPU generator seeded
as ``chain.initial_noise`` seeds), scheduler and sizes on both sides; the pipelines run with
``output_type="latent"`` and their final latents are compared with the sampler's. Where the
sampler differs on purpose (img2img from the VAE posterior's mean), the pipeline is handed that
mean as ready latents: a 4-channel ``image`` is used as is by ``prepare_latents`` in 0.42.1.

test-tiny's ControlNet is a fresh one: its zero convolutions are zero, so its residuals are too and
a mistake on the control path (scale, control image, which rows) would go unseen. These tests use
a copy whose zero convolutions hold random weights (``controlled``).

Tolerance: both sides run the same float32 kernels on tensors of the same shapes; on this CPU they
agree bit for bit. 1e-5 leaves room for other kernels' rounding and stays far below what a real
difference gives (guidance 6.1 for 6, or control scale 0.81 for 0.8, moves the latents by ~1e-2).
"""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
)
from PIL import Image

from engine.render import sampler
from engine.render.chain import FrameChain
from engine.render.steps.control import control_map
from engine.request.params import RenderParams

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
# Every scheduler on the img2img path (where the start step and begin index matter); DPM-Solver++
# (the default) and Euler (the one whose input scaling and initial sigma are not 1) elsewhere.
SCHEDULERS = ("dpm++", "euler", "pndm", "unipc")


@pytest.fixture(scope="module")
def controlled(components):
    """``components`` with a ControlNet whose residuals are not zero (the loaded modules are untouched)."""
    controlnet = copy.deepcopy(components.controlnet)
    torch.manual_seed(0)
    with torch.no_grad():
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            conv.weight.normal_(std=0.5)
            conv.bias.normal_(std=0.1)
    return dataclasses.replace(components, controlnet=controlnet)


def _params(scheduler: str, **changes) -> RenderParams:
    base = {
        "prompt": "a cat in a sunflower field",
        "negative_prompt": "blurry",
        "frames": 2,
        "steps": 4,
        "guidance": 6.0,
        "control_scale": 0.8,
        "strength": 0.5,
        "scheduler": scheduler,
        "width": 64,
        "height": 64,
        "seed": 1234,
    }
    return RenderParams(**(base | changes))


def _previous_frame() -> np.ndarray:
    """A frame with edges for Canny to find (the chain's frame 0 stand-in)."""
    y, x = np.mgrid[0:64, 0:64]
    frame = np.stack([(x * 4) % 256, (y * 4) % 256, ((x // 16 + y // 16) % 2) * 255], axis=-1)
    return frame.astype(np.uint8)


def _sampler_latents(components, params: RenderParams, frames=()) -> torch.Tensor:
    task = FrameChain(components, params, frames=frames).next_task()
    while not task.done:
        sampler.step(components, [task])
    return task.latents


def _pipeline(pipeline_class, components, params: RenderParams):
    """``pipeline_class`` over the loaded modules, with a fresh scheduler of the kind ``params`` name."""
    cls, extra = sampler.SCHEDULER_CLASSES[params.scheduler]
    modules = {
        "vae": components.vae,
        "text_encoder": components.text_encoder,
        "tokenizer": components.tokenizer,
        "unet": components.unet,
        "scheduler": cls.from_config(components.scheduler_config, **extra),
    }
    if pipeline_class is not StableDiffusionPipeline:
        modules["controlnet"] = components.controlnet
    pipe = pipeline_class(**modules, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _common(params: RenderParams) -> dict:
    return {
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt,
        "height": params.height,
        "width": params.width,
        "num_inference_steps": params.steps,
        "guidance_scale": params.guidance,
        "generator": torch.Generator("cpu").manual_seed(params.seed),
        "output_type": "latent",
    }


@pytest.mark.parametrize("scheduler", ["dpm++", "euler"])
def test_frame_0_is_what_the_text_to_image_pipeline_gives(components, scheduler):
    params = _params(scheduler)
    pipe = _pipeline(StableDiffusionPipeline, components, params)
    expected = pipe(**_common(params)).images
    torch.testing.assert_close(_sampler_latents(components, params), expected, **TOLERANCE)


@pytest.mark.parametrize("scheduler", ["dpm++", "euler"])
def test_a_later_frame_without_strength_is_what_the_controlnet_pipeline_gives(controlled, scheduler):
    components = controlled
    params = _params(scheduler, strength=0.0)
    previous = _previous_frame()
    pipe = _pipeline(StableDiffusionControlNetPipeline, components, params)
    control = Image.fromarray(control_map(previous, params))
    expected = pipe(**_common(params), image=control, controlnet_conditioning_scale=params.control_scale).images
    torch.testing.assert_close(_sampler_latents(components, params, [previous]), expected, **TOLERANCE)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_later_frame_is_what_the_controlnet_img2img_pipeline_gives_from_the_posterior_mean(controlled, scheduler):
    components = controlled
    params = _params(scheduler)
    previous = _previous_frame()
    pipe = _pipeline(StableDiffusionControlNetImg2ImgPipeline, components, params)
    control = Image.fromarray(control_map(previous, params))
    init_latents = sampler.encode(components, [previous])  # the posterior's mean, scaled
    expected = pipe(
        **_common(params),
        image=init_latents,
        control_image=control,
        strength=params.strength,
        controlnet_conditioning_scale=params.control_scale,
    ).images
    torch.testing.assert_close(_sampler_latents(components, params, [previous]), expected, **TOLERANCE)


def test_the_controlnet_of_these_tests_changes_the_frame(controlled):
    # Guards the two tests above: with test-tiny's own ControlNet the control scale changes nothing.
    previous = _previous_frame()
    scaled = _sampler_latents(controlled, _params("dpm++"), [previous])
    unscaled = _sampler_latents(controlled, _params("dpm++", control_scale=0.0), [previous])
    assert (scaled - unscaled).abs().max() > 1e-2


def test_encode_is_the_posterior_mean_of_what_the_pipeline_would_encode(components):
    pipe = components.img2img_pipeline()
    previous = _previous_frame()
    pixels = pipe.image_processor.preprocess(Image.fromarray(previous), height=64, width=64)
    with torch.inference_mode():
        mean = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    torch.testing.assert_close(sampler.encode(components, [previous]), mean, **TOLERANCE)


def test_decode_is_the_pipelines_decode_rounded_to_8_bits(components):
    pipe = components.pipeline()
    latents = torch.randn((2, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(0))
    with torch.inference_mode():
        images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
        expected = pipe.image_processor.postprocess(images, output_type="np")  # float in [0, 1]
    decoded = np.stack(sampler.decode(components, list(latents.split(1))))
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    # Rounding to the nearest of 256 levels: never more than half a level (plus float noise) off.
    assert np.abs(decoded.astype(np.float64) - expected.astype(np.float64) * 255).max() <= 0.5 + 1e-3

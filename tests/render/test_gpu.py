"""Checks that need CUDA (skipped on machines without a GPU; bench/device.sh runs the benchmark)."""

import dataclasses

import numpy as np
import pytest
import torch

from engine.config import EngineConfig
from engine.render import accel
from engine.render.chain import render_frames
from engine.request.params import RenderParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def cuda_components():
    from engine.render.weights.models import load_components

    components = load_components(EngineConfig(model="test-tiny", device="cuda"))
    accel.prepare(components)
    return components


def test_fp16_chain_on_cuda_renders_the_requested_frames(cuda_components):
    assert cuda_components.dtype == torch.float16
    frames = list(render_frames(cuda_components, RenderParams(prompt="a cat", frames=3, steps=3, seed=1)))
    assert [f.shape for f in frames] == [(512, 512, 3)] * 3


def test_compiled_step_matches_the_eager_one_within_fp16_noise(cuda_components):
    params = RenderParams(prompt="a cat", frames=2, steps=4, width=256, height=256, seed=3)
    eager = list(render_frames(cuda_components, params))
    step = accel.CompiledStep(cuda_components)
    step.warm_up(256, 256)
    compiled = list(render_frames(cuda_components, dataclasses.replace(params), predict=step))
    for a, b in zip(eager, compiled):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_compiled_vae_matches_the_eager_one_within_fp16_noise(cuda_components):
    from engine.render import sampler

    vae = accel.CompiledVae(cuda_components.vae)
    vae.warm_up(256, 256, (1, 2))
    latents = list(torch.randn(2, 4, 32, 32, device="cuda", dtype=torch.float16).split(1))
    eager, compiled = sampler.decode(cuda_components, latents), sampler.decode(cuda_components, latents, vae)
    for a, b in zip(eager, compiled):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
    encoded = sampler.encode(cuda_components, compiled, vae).float()
    assert (encoded - sampler.encode(cuda_components, compiled).float()).abs().mean() < 0.01


def test_a_clip_with_every_speed_up_matches_the_eager_one_within_fp16_noise(cuda_components):
    params = RenderParams(prompt="a cat", frames=3, steps=4, strength=0.5, width=256, height=256, seed=5)
    eager = list(render_frames(cuda_components, params))
    step, vae = accel.CompiledStep(cuda_components), accel.CompiledVae(cuda_components.vae)
    step.warm_up(256, 256)
    vae.warm_up(256, 256)
    fast = list(render_frames(cuda_components, dataclasses.replace(params), predict=step, vae=vae))
    for a, b in zip(eager, fast):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0

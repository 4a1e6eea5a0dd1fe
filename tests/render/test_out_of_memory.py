"""Out of memory leaves the render layer as ``engine.errors.OutOfMemory``, which torch-free code can catch."""

import pytest
import torch

from engine.errors import OutOfMemory
from engine.render import sampler
from engine.render.chain import FrameChain, render_frames, render_round
from engine.request.params import RenderParams

PARAMS = RenderParams(prompt="a cat", frames=2, steps=2, width=64, height=64, seed=1)


@pytest.fixture
def out_of_memory(monkeypatch):
    """Make the denoising step's noise prediction fail as a full GPU does."""

    def predict_noise(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sampler, "predict_noise", predict_noise)


def test_render_round_raises_out_of_memory_from_the_torch_error(components, out_of_memory):
    chain = FrameChain(components, PARAMS)
    with pytest.raises(OutOfMemory, match="Tried to allocate 2.00 GiB") as caught:
        render_round(components, [chain])
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert chain.frames == []


def test_render_frames_raises_out_of_memory_from_the_torch_error(components, out_of_memory):
    with pytest.raises(OutOfMemory) as caught:
        next(render_frames(components, PARAMS))
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)


def test_other_failures_pass_through_unchanged(components, monkeypatch):
    def predict_noise(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sampler, "predict_noise", predict_noise)
    with pytest.raises(RuntimeError, match="^a bug$"):
        render_round(components, [FrameChain(components, PARAMS)])

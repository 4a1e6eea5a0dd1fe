"""Cross-frame attention (``engine.render.coherence``) on the CPU with test-tiny: what one layer
computes, whose states each row sees, which timesteps are kept, what it costs, and the chain with it on.

The worker path (budget, a delivered video) is tests/runtime/test_runtime_coherence.py's.
"""

import dataclasses

import numpy as np
import pytest
import torch

from engine.render import coherence
from engine.render.chain import FrameChain, render_frames, render_round
from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, recipe_params, render_command

BASE = RenderParams(prompt="a cat", frames=3, steps=2, strength=0.5, width=64, height=64, seed=5)
CROSS = dataclasses.replace(BASE, coherence="cross-frame")
T = 500.0  # the timestep the layer tests store their states at


def _layer(components):
    name, attn = next(iter(coherence.self_attention_layers(components.unet, ("up",)).items()))
    return name, attn


def _states(name: str, anchor, previous=None) -> coherence.FrameStates:
    """States holding ``anchor`` (and ``previous``) keys and values for layer ``name`` at ``T``."""
    states = coherence.FrameStates(("up",), keep={T})
    states.anchor = {T: {name: anchor}}
    states.previous = None if previous is None else {T: {name: previous}}
    states.begin_frame(torch.tensor([T]), record=True)
    return states


def _kv(attn, rows: int, tokens: int, seed: int):
    """Random stored keys and values in the storage dtype, as a frame would have left them."""
    g = torch.Generator().manual_seed(seed)
    shape = (rows, tokens, attn.inner_dim)
    return torch.randn(shape, generator=g).half(), torch.randn(shape, generator=g).half()


def _run(attn, name, hidden, parts):
    """``attn`` on ``hidden`` with cross-frame attention over ``parts``, its own processor back after."""
    own = attn.processor
    attn.set_processor(coherence.CrossFrameAttnProcessor(name, parts))
    try:
        with torch.inference_mode():
            return attn(hidden)
    finally:
        attn.set_processor(own)


def _direct(attn, hidden, *stored):
    """Attention written out by hand: softmax(q·kᵀ/√d)·v per head over [own, *stored] keys, then to_out."""
    q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
    keys = torch.cat([k, *(sk.float() for sk, _ in stored)], dim=1)
    values = torch.cat([v, *(sv.float() for _, sv in stored)], dim=1)
    heads, d = attn.heads, q.shape[-1] // attn.heads
    split = lambda x: x.view(x.shape[0], x.shape[1], heads, d).transpose(1, 2)  # noqa: E731
    weights = torch.softmax(split(q) @ split(keys).transpose(-1, -2) / d**0.5, dim=-1)
    out = (weights @ split(values)).transpose(1, 2).reshape(q.shape)
    return attn.to_out[0](out)


def test_a_frame_attends_over_its_own_frame_0s_and_the_previous_frames_keys_and_records_its_own(components):
    name, attn = _layer(components)
    tokens = 16
    hidden = torch.randn(2, tokens, attn.query_dim, generator=torch.Generator().manual_seed(1))
    anchor, previous = _kv(attn, 2, tokens, 2), _kv(attn, 2, tokens, 3)
    states = _states(name, anchor, previous)
    out = _run(attn, name, hidden, [coherence.Segment(0, 2, states, T)])
    with torch.inference_mode():
        expected = _direct(attn, hidden, anchor, previous)
        plain = attn(hidden)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        assert (out - plain).abs().max() > 1e-3  # the stored frames changed what it computed
        keys, values = states.current[T][name]
        assert keys.dtype == torch.float16 and torch.equal(keys, attn.to_k(hidden).half())
        assert torch.equal(values, attn.to_v(hidden).half())


def test_the_unconditional_and_conditional_rows_each_attend_to_their_own_kind(components):
    name, attn = _layer(components)
    hidden = torch.randn(2, 16, attn.query_dim, generator=torch.Generator().manual_seed(4))
    anchor = _kv(attn, 2, 16, 5)
    other = (anchor[0].clone(), anchor[1].clone())
    other[0][1], other[1][1] = 9.0, -9.0  # the conditional row of frame 0 replaced
    first = _run(attn, name, hidden, [coherence.Segment(0, 2, _states(name, anchor), T)])
    second = _run(attn, name, hidden, [coherence.Segment(0, 2, _states(name, other), T)])
    assert torch.equal(first[0], second[0])  # the unconditional row never saw it
    assert (first[1] - second[1]).abs().max() > 1e-2


def test_jobs_in_one_batch_see_only_their_own_states_and_plain_rows_plain_attention(components):
    name, attn = _layer(components)
    hidden = torch.randn(5, 16, attn.query_dim, generator=torch.Generator().manual_seed(6))
    a, b = _states(name, _kv(attn, 2, 16, 7)), _states(name, _kv(attn, 2, 16, 8), _kv(attn, 2, 16, 9))
    parts = [coherence.Segment(0, 2, a, T), coherence.Segment(2, 3), coherence.Segment(3, 5, b, T)]
    together = _run(attn, name, hidden, parts)
    a_alone = _run(attn, name, hidden[:2], [coherence.Segment(0, 2, _states(name, a.anchor[T][name]), T)])
    b_alone = _run(attn, name, hidden[3:], [coherence.Segment(0, 2, _states(name, b.anchor[T][name],
                                                                           b.previous[T][name]), T)])  # fmt: skip
    with torch.inference_mode():
        plain = attn(hidden[2:3])
    torch.testing.assert_close(together[:2], a_alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together[2:3], plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together[3:], b_alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.current[T][name][0], attn.to_k(hidden[:2]).half())  # a recorded its rows only
    torch.testing.assert_close(b.current[T][name][0], attn.to_k(hidden[3:]).half())


def test_a_batched_round_keeps_each_jobs_states_as_its_solo_run_does(components):
    jobs = [CROSS, dataclasses.replace(CROSS, prompt="a boat", seed=9, guidance=4.0), BASE.with_seed(3)]
    solo = [FrameChain(components, params) for params in jobs]
    for chain in solo:
        render_round(components, [chain])
    batched = [FrameChain(components, params) for params in jobs]
    render_round(components, batched)
    assert batched[2].coherence is None
    for alone, together in zip(solo[:2], batched[:2]):
        assert alone.coherence.anchor.keys() == together.coherence.anchor.keys()
        for t, layers in alone.coherence.anchor.items():
            for layer, (keys, values) in layers.items():
                torch.testing.assert_close(together.coherence.anchor[t][layer][0], keys, rtol=2e-3, atol=2e-3)
                torch.testing.assert_close(together.coherence.anchor[t][layer][1], values, rtol=2e-3, atol=2e-3)


def test_states_are_kept_by_timestep_for_the_steps_later_frames_run(components):
    params = dataclasses.replace(CROSS, frames=4, steps=4)  # strength 0.5: later frames run the last 2 of 4
    chain = FrameChain(components, params)
    first = chain.next_task()
    frame_0 = [coherence.timestep_key(t) for t in first.timesteps.tolist()]
    render_round(components, [chain])  # next_task's task is thrown away: the round plans its own
    later = [coherence.timestep_key(t) for t in chain.next_task().timesteps.tolist()]
    assert len(frame_0) == 4 and later == frame_0[2:]
    assert set(chain.coherence.anchor) == set(later)
    layers = set(coherence.self_attention_layers(components.unet, ("up",)))
    assert all(set(by_layer) == layers for by_layer in chain.coherence.anchor.values())
    assert chain.coherence.previous is None  # frame 1 attends over [own, frame 0]
    render_round(components, [chain])
    assert set(chain.coherence.previous) == set(later)  # frame 2: [own, frame 0, frame 1]


def test_frame_0_is_unchanged_later_frames_differ_and_off_stays_byte_identical(components):
    before = list(render_frames(components, BASE))
    processors = dict(components.unet.attn_processors)
    cross = list(render_frames(components, CROSS))
    assert components.unet.attn_processors == processors  # the layers' own processors are back
    after = list(render_frames(components, BASE))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert np.array_equal(cross[0], before[0])  # frame 0 has no other frame to look at
    assert not np.array_equal(cross[1], before[1])


def test_the_cost_is_three_frames_of_fp16_keys_and_values_per_kept_step(components):
    params = dataclasses.replace(CROSS, frames=4, steps=4)
    chain = FrameChain(components, params)
    peak = []
    for _ in range(4):
        render_round(components, [chain], on_step=lambda step, total: peak.append(chain.coherence.nbytes))
    unet = components.unet
    expected = coherence.state_bytes(unet, ("up",), width=64, height=64, steps=4, strength=0.5, guided=True, frames=4)
    assert max(peak) == expected  # frame 2's last step: frame 0's, frame 1's and its own


def test_at_512_the_up_blocks_of_sd15_keep_55_mb_per_step_and_frame_with_guidance():
    from diffusers import UNet2DConditionModel

    from engine.render.weights.tiny import _UNET

    with torch.device("meta"):  # the shapes without the weights
        unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, **_UNET["sd15"])
    one = coherence.state_bytes(unet, ("up",), width=512, height=512, steps=1, strength=0.0, guided=True, frames=2)
    tokens_by_channels = 256 * 1280 + 1024 * 640 + 4096 * 320  # up blocks 1-3: 16², 32², 64² latents
    assert one == coherence.SETS * 3 * tokens_by_channels * 2 * 2 * 2  # 3 layers each, k+v, 2 rows, fp16
    assert one // coherence.SETS == 55_050_240
    defaults = coherence.state_bytes(unet, ("up",), width=512, height=512, steps=12, strength=0.6, guided=True,
                                     frames=16)  # fmt: skip
    assert defaults == 3 * 7 * 55_050_240  # ≈1.1 GB a job at the defaults: 7 of 12 steps kept


def test_a_resumed_job_rebuilds_frame_0s_and_the_last_frames_states(components):
    params = dataclasses.replace(CROSS, frames=4)
    full = list(render_frames(components, params))
    chain = FrameChain(components, params, frames=full[:2])
    assert chain.coherence.anchor is None
    chain.next_task()
    kept = set(chain.coherence.keep)
    assert set(chain.coherence.anchor) == kept and set(chain.coherence.previous) == kept
    resumed = list(render_frames(components, params, frames=full[:2]))
    assert len(resumed) == 2 and all(f.shape == (64, 64, 3) for f in resumed)


def test_a_start_picture_kept_as_frame_0_is_the_anchor(components):
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    params = dataclasses.replace(CROSS, image_key="0" * 64)
    chain = FrameChain(components, params, picture=picture)
    assert len(chain.frames) == 1 and chain.coherence.anchor is None
    chain.next_task()  # frame 1's task: frame 0's states are rebuilt first
    assert set(chain.coherence.anchor) == chain.coherence.keep and chain.coherence.previous is None


def test_the_recipe_records_coherence_and_renders_it_again():
    params = dataclasses.replace(CROSS, seed=3)
    recipe = build_recipe(params, model="org/sd", controlnet="org/cn")
    assert recipe["params"]["coherence"] == "cross-frame" and recipe_params(recipe) == params
    assert "--coherence cross-frame" in render_command(recipe)
    assert recipe_params({**recipe, "params": {k: v for k, v in recipe["params"].items() if k != "coherence"}}) == (
        dataclasses.replace(params, coherence="off")
    )  # a video from before coherence existed
    assert params.summary().endswith("coherence cross-frame")


@pytest.mark.parametrize("value", ["on", "", "Cross-Frame"])
def test_an_unknown_coherence_is_one_sentence(value):
    from engine.errors import UserError

    with pytest.raises(UserError, match="^unknown coherence .*; choose one of: off, cross-frame, motion.$"):
        dataclasses.replace(BASE, coherence=value).validate()

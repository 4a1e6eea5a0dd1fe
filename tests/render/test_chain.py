"""The frame chain on the CPU with test-tiny: sizes, seeds, resume, cancel, keyframes, batching.

The whole job to its file (frames saved, resumed, encoded) is tests/runtime/test_render_job.py's.
"""

import dataclasses
import os
import threading

import numpy as np
import pytest
import torch

from engine.render.chain import FrameChain, render_frames, render_round
from engine.render.sampler import Cancelled
from engine.request.params import RenderParams

BASE = RenderParams(prompt="a cat in a sunflower field", frames=3, steps=3, width=64, height=64, seed=7)


def _render(components, params, **kwargs):
    return list(render_frames(components, params, **kwargs))


def test_renders_the_requested_number_of_frames_at_the_requested_size(components):
    frames = _render(components, RenderParams(prompt="a cat", frames=4, steps=2, width=96, height=64, seed=1))
    assert len(frames) == 4
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in frames)


def test_same_seed_gives_identical_frames_and_another_seed_does_not(components):
    first = _render(components, BASE)
    again = _render(components, BASE)
    other = _render(components, BASE.with_seed(8))
    assert all((a == b).all() for a, b in zip(first, again))
    assert np.abs(first[0].astype(int) - other[0].astype(int)).mean() > 1.0


def test_frames_follow_each_other(components):
    # With img2img from the previous frame each frame starts near the last one.
    params = RenderParams(prompt="a cat", frames=3, steps=4, strength=0.5, width=64, height=64, seed=3)
    frames = _render(components, params)
    assert not (frames[0] == frames[1]).all()


@pytest.mark.parametrize("strength, motion", [(0.0, "none"), (0.6, "zoom-in")])
def test_resume_from_frame_k_equals_the_uninterrupted_run(components, strength, motion):
    params = RenderParams(
        prompt="0: a cat | 3: a tiger",
        frames=5,
        steps=3,
        strength=strength,
        motion=motion,
        width=64,
        height=64,
        seed=11,
    )
    full = _render(components, params)
    resumed = full[:2] + _render(components, params, frames=full[:2])
    assert len(resumed) == 5
    assert all((a == b).all() for a, b in zip(full, resumed))


def test_cancel_stops_within_one_step_and_discards_the_frame(components):
    cancel = threading.Event()
    steps = []

    def on_step(step, total):
        steps.append(step)
        if len(steps) == 4:  # second frame, first step
            cancel.set()

    params = BASE.with_seed(5)
    produced = []
    with pytest.raises(Cancelled):
        for frame in render_frames(components, params, cancel=cancel, on_step=on_step):
            produced.append(frame)
    assert len(steps) == 4 and len(produced) == 1


def test_prompt_is_encoded_once_per_keyframe_not_per_frame(components):
    calls = []
    handle = components.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        _render(
            components, RenderParams(prompt="0: a cat | 4: a tiger", frames=6, steps=1, width=64, height=64, seed=1)
        )
    finally:
        handle.remove()
    assert len(calls) == 3  # two keyframes and the negative prompt


def test_keyframe_embeddings_interpolate_between_keys(components):
    chain = FrameChain(
        components, RenderParams(prompt="0: a cat | 4: a tiger", frames=6, steps=1, width=64, height=64, seed=1)
    )
    cat, tiger = chain.embedding(0), chain.embedding(4)
    assert not torch.equal(cat, tiger)
    torch.testing.assert_close(chain.embedding(2), (cat + tiger) / 2)
    torch.testing.assert_close(chain.embedding(1), 0.75 * cat + 0.25 * tiger)
    assert torch.equal(chain.embedding(5), tiger)


def test_batched_jobs_give_the_same_frames_as_jobs_run_alone(components):
    jobs = [
        BASE,
        RenderParams(
            prompt="0: a tiger | 2: a dog",
            frames=3,
            steps=4,
            guidance=5.0,
            control_scale=0.8,
            strength=0.5,
            motion="pan-left",
            width=64,
            height=64,
            seed=99,
        ),
        RenderParams(prompt="a boat", frames=3, steps=2, scheduler="euler", width=64, height=64, seed=3),
    ]
    alone = [_render(components, params) for params in jobs]
    # Each round starts every job from the frames its solo run made, so the comparison measures
    # batching alone: a one-level rounding difference fed back through Canny and img2img would
    # otherwise grow chaotically over a clip, as fp16 noise does.
    for k in range(3):
        chains = [FrameChain(components, params, frames=solo[:k]) for params, solo in zip(jobs, alone)]
        batched = render_round(components, chains)
        for solo, frame in zip(alone, batched):
            # Batched CPU kernels may round differently: a few pixels may differ by a few levels
            # (one level, amplified by the colour match's trip through LAB and by Canny edges that
            # flip); the rest are identical. Mixing up two jobs' rows differs by tens of levels.
            diff = np.abs(solo[k].astype(int) - frame.astype(int))
            assert diff.max() <= 8 and diff.mean() < 0.05 and (diff > 0).mean() < 0.03


def test_a_cancelled_job_leaves_the_batch_and_the_others_finish(components):
    cancel = threading.Event()
    chains = [FrameChain(components, BASE, cancel=cancel), FrameChain(components, BASE.with_seed(8))]
    cancel.set()
    frames = render_round(components, chains)
    assert frames[0] is None and frames[1] is not None
    assert len(chains[0].frames) == 0 and len(chains[1].frames) == 1


def test_a_compiled_step_runs_sizes_it_has_not_compiled_eagerly(components):
    from engine.render import accel

    step = accel.CompiledStep(components)  # nothing warmed: every call takes the eager path
    assert accel.bucket(3) == 4 and accel.bucket(16) == 16
    frames = _render(components, BASE, predict=step)
    assert all((a == b).all() for a, b in zip(frames, _render(components, BASE)))
    assert step.warmed == set()


def test_a_round_encodes_the_frames_its_jobs_start_from_in_one_vae_call(components, monkeypatch):
    from engine.render import sampler

    jobs = [dataclasses.replace(BASE, strength=0.5, seed=seed) for seed in (1, 2, 3)]
    solo = [_render(components, params) for params in jobs]
    calls = []
    real = sampler.vae_encode
    monkeypatch.setattr(sampler, "vae_encode", lambda vae, pixels: calls.append(len(pixels)) or real(vae, pixels))
    chains = [FrameChain(components, params, frames=frames[:1]) for params, frames in zip(jobs, solo)]
    batched = render_round(components, chains)
    assert calls == [3]  # frame 1 of each job is re-drawn from its frame 0: one encode of the three
    for frames, frame in zip(solo, batched):
        assert np.abs(frames[1].astype(int) - frame.astype(int)).mean() < 0.05


def test_a_compiled_vae_matches_the_eager_one_at_padded_sizes_and_runs_others_eagerly(components):
    from engine.render import accel, sampler

    vae = accel.CompiledVae(components.vae, backend="eager")  # dynamo tracing without inductor (CPU test)
    vae.warm_up(64, 64, (1, 3))
    assert vae.warmed == {("decode", 1), ("encode", 1), ("decode", 4), ("encode", 4)}
    latents = list(torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0)).split(1))
    frames = sampler.decode(components, latents, vae)  # 3 frames padded to the bucket of 4, then cut
    assert len(frames) == 3
    assert all((a == b).all() for a, b in zip(frames, sampler.decode(components, latents)))
    torch.testing.assert_close(sampler.encode(components, frames, vae), sampler.encode(components, frames))
    five = sampler.decode(components, latents + latents[:2], vae)  # bucket 8 was never compiled: eager
    assert len(five) == 5 and vae.warmed == {("decode", 1), ("encode", 1), ("decode", 4), ("encode", 4)}


def test_the_compile_cache_goes_to_the_data_folder_unless_the_host_chose_one(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from engine.render import accel

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", os.path.abspath(default_cache_dir()))  # what importing torch set
    accel.use_cache_dir(tmp_path / "compile-cache")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "compile-cache").resolve())
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/srv/inductor")  # the host's own choice stays
    accel.use_cache_dir(tmp_path / "compile-cache")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/srv/inductor"


def test_a_rounds_cpu_steps_run_on_several_threads_and_give_the_frames_of_one_thread(components, monkeypatch):
    from engine.render import chain as chain_module

    jobs = [dataclasses.replace(BASE, seed=seed, motion="zoom-in") for seed in (1, 2, 3)]
    solo = [_render(components, params) for params in jobs]
    threads = set()
    real = chain_module.control_map
    monkeypatch.setattr(
        chain_module, "control_map", lambda *a: threads.add(threading.current_thread().name) or real(*a)
    )
    chains = [FrameChain(components, params, frames=frames[:1]) for params, frames in zip(jobs, solo)]
    batched = render_round(components, chains)
    assert threads and all(name.startswith("animabot-steps") for name in threads)
    for frames, frame in zip(solo, batched):
        assert np.abs(frames[1].astype(int) - frame.astype(int)).mean() < 0.05

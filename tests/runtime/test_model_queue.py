"""Jobs of several models and LoRAs in one queue: batched only with their own kind, frames as if alone."""

import asyncio
import dataclasses

import numpy as np
import pytest
from support import tiny_checkpoints

from engine.config import Config, EngineConfig
from engine.render.chain import render_frames
from engine.render.frames import load_frames
from engine.render.weights.model_cache import ModelCache
from engine.request.params import RenderParams
from engine.runtime import model_order
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore

CLIP = RenderParams(prompt="a cat", frames=2, steps=2, width=64, height=64, seed=5)


def test_an_empty_batch_prefers_a_loaded_model_but_passes_over_a_head_job_only_once():
    passed = set()
    queue = [(1, "other"), (2, "default"), (3, "default")]
    assert model_order.pick(queue, {"default"}, passed) == 2 and passed == {1}
    assert model_order.pick([(1, "other"), (3, "default")], {"default"}, passed) == 1 and passed == set()
    assert model_order.pick([(4, "x"), (5, "y")], {"default"}, passed) == 4  # nothing loaded is waiting
    assert model_order.pick([], {"default"}, passed) is None


@pytest.fixture
def config(tmp_path):
    lora = tiny_checkpoints.save_diffusers_lora(tmp_path / "ink.safetensors")
    return Config(
        data_dir=tmp_path / "data",
        engine=EngineConfig(model="test-tiny", device="cpu", max_batch=4, max_loaded_models=1),
        models={"second": {"model": "test-tiny-2"}},
        loras={"ink": {"file": str(lora), "trigger": "ink drawing"}},
    )


async def test_a_mixed_queue_renders_each_job_as_it_would_alone(config):
    jobs = [
        CLIP,
        dataclasses.replace(CLIP, model="second"),
        dataclasses.replace(CLIP, loras=(("ink", 1.0),)),
        dataclasses.replace(CLIP, seed=6),
        dataclasses.replace(CLIP, model="second", loras=(("ink", 0.5),), seed=7),
    ]
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    try:
        ids = [(await store.enqueue(JobKind.ANIMATE, p, user_id=i % 2 + 1)).id for i, p in enumerate(jobs)]
        await runtime.start()
        await asyncio.wait_for(runtime.drain(), 120)
        done = [await store.get(i) for i in ids]
        assert [j.status for j in done] == [JobStatus.DONE] * len(jobs)
        loads = runtime.batcher.gpu_models.cache.loads
    finally:
        await runtime.stop()
        await store.close()
    assert loads >= 2  # one model loaded at a time: the runtime switched and came back
    alone = ModelCache(config.catalog, config.engine)
    for job_id, params in zip(ids, jobs):
        loaded = alone.get(params.model)
        loaded.use_loras(config.catalog, params.loras)
        prompted = dataclasses.replace(params, prompt=config.catalog.prompt_with_triggers(params.prompt, params.loras))
        expected = list(render_frames(loaded.components, prompted))
        got = load_frames(config.jobs_dir / str(job_id) / "frames", params.frames)
        assert all(np.array_equal(a, b) for a, b in zip(expected, got)), f"job {job_id} ({params.summary()})"


async def test_a_job_for_a_model_no_longer_configured_fails_with_the_names_that_exist(config):
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    try:
        job = await store.enqueue(JobKind.ANIMATE, dataclasses.replace(CLIP, model="removed"), user_id=1)
        await runtime.start()
        await asyncio.wait_for(runtime.drain(), 60)
        failed = await store.get(job.id)
    finally:
        await runtime.stop()
        await store.close()
    assert failed.status is JobStatus.FAILED
    assert failed.error == "There is no model 'removed'; choose one of: default, second."

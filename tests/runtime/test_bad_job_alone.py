"""A bad job fails alone: a job that makes its round raise fails with its sentence, and the jobs
batched beside it are delivered (issue 20, defect 1)."""

import asyncio
import dataclasses
import json

import pytest

import engine.render.chain
from engine.config import Config, EngineConfig
from engine.errors import OutOfMemory
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore
from engine.video.read import decode_frames

GOOD = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)


@pytest.fixture
async def served(tmp_path):
    config = Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"))
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    yield store, runtime
    await runtime.stop()
    await store.close()


async def _three_jobs_one_bad(store, bad: RenderParams | dict):
    """Two good jobs and, between them, one of the same batch key whose params are ``bad`` (a dict is
    written straight into the row's params JSON, past every check of the way in)."""
    first = await store.enqueue(JobKind.ANIMATE, GOOD, user_id=1)
    middle = await store.enqueue(JobKind.ANIMATE, bad if isinstance(bad, RenderParams) else GOOD, user_id=2)
    if isinstance(bad, dict):
        async with store._db.transaction() as tx:
            await tx.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps(bad), middle.id))
    last = await store.enqueue(JobKind.ANIMATE, GOOD.with_seed(2), user_id=3)
    return first, middle, last


async def _served_all(store, runtime):
    runtime.notify()
    await asyncio.wait_for(runtime.drain(), 120)


async def _assert_delivered(store, *jobs):
    for job in jobs:
        done = await store.get(job.id)
        assert done.status is JobStatus.DONE, (job.id, done.status, done.error)
        assert len(decode_frames(done.result_path)) == GOOD.frames


async def test_a_stored_row_with_fractional_steps_fails_alone(served):
    store, runtime = served
    first, bad, last = await _three_jobs_one_bad(store, {**GOOD.to_dict(), "steps": 2.5})
    await _served_all(store, runtime)
    failed = await store.get(bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "steps must be a whole number, got 2.5."
    await _assert_delivered(store, first, last)


async def test_a_job_whose_chain_raises_in_the_shared_round_fails_alone(served, monkeypatch):
    store, runtime = served
    real_plan = engine.render.chain.FrameChain.plan

    def plan(chain):  # a fault of this one job, past its checks, inside the batched GPU call
        if chain.params.prompt == "a broken cat":
            raise ValueError("this job's frame cannot be planned")
        return real_plan(chain)

    monkeypatch.setattr(engine.render.chain.FrameChain, "plan", plan)
    first, bad, last = await _three_jobs_one_bad(store, dataclasses.replace(GOOD, prompt="a broken cat", seed=3))
    await _served_all(store, runtime)
    failed = await store.get(bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "The render failed unexpectedly; the host can find details in the log."
    await _assert_delivered(store, first, last)
    ended = [await store.get(job.id) for job in (first, bad, last)]
    assert max(j.started_at for j in ended) < min(j.finished_at for j in ended)  # one batch


async def test_out_of_memory_in_a_batched_round_retries_each_job_alone(served, monkeypatch):
    store, runtime = served
    real_round = engine.render.chain.render_round
    sizes = []

    def render_round(components, chains, *args, **kwargs):  # the device fits one job at a time
        sizes.append(len(chains))
        if len(chains) > 1:
            raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_round(components, chains, *args, **kwargs)

    monkeypatch.setattr(engine.render.chain, "render_round", render_round)
    jobs = await _three_jobs_one_bad(store, GOOD.with_seed(3))
    await _served_all(store, runtime)
    await _assert_delivered(store, *jobs)
    assert sizes[0] == 3 and 3 not in sizes[1:]  # after the out-of-memory the batch renders in smaller rounds

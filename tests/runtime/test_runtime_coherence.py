"""Cross-frame jobs through the worker: the states' memory budget (``[engine] coherence_budget_mb``)
decides which of them render at once, and each delivers its video with the recipe saying so."""

import asyncio
import dataclasses

from support.serving import served

from engine.config import Config, EngineConfig
from engine.render.coherence import state_bytes
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore
from engine.video.read import probe, read_recipe

CROSS = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1, coherence="cross-frame")


async def _served(tmp_path, budget_mb: float, jobs: list[RenderParams]):
    """Run ``jobs`` through a runtime with that budget; their stored rows and the progress events, in order."""
    engine = EngineConfig(model="test-tiny", device="cpu", coherence_budget_mb=budget_mb)
    return await served(Config(data_dir=tmp_path / "data", engine=engine), jobs, timeout=120)


async def test_cross_frame_jobs_render_within_the_budget_and_deliver_their_videos(tmp_path, components):
    one = state_bytes(components.unet, ("up",), width=64, height=64, steps=2, strength=CROSS.strength, guided=True,
                      frames=3)  # fmt: skip
    jobs = [CROSS, CROSS.with_seed(2), RenderParams(prompt="a dog", frames=3, steps=2, width=64, height=64, seed=3)]
    (a, b, plain), seen = await _served(tmp_path, 1.5 * one / 2**20, jobs)  # room for one job's states
    assert all(job.status is JobStatus.DONE for job in (a, b, plain))
    for job in (a, b):
        assert probe(job.result_path).frames == 3
        assert read_recipe(job.result_path)["params"]["coherence"] == "cross-frame"
    frames = [(e.job_id, e.frames_done) for e in seen if e.status is JobStatus.RUNNING]
    # b waited in the batch until a's states were freed; the job without coherence did not wait.
    assert frames.index((b.id, 1)) > frames.index((a.id, 3))
    assert frames.index((plain.id, 1)) < frames.index((a.id, 3))


async def test_a_cross_frame_job_larger_than_the_whole_budget_fails_with_the_reason(tmp_path):
    plain = RenderParams(prompt="a dog", frames=2, steps=2, width=64, height=64, seed=3)
    (refused, served), _ = await _served(tmp_path, 0.0, [CROSS, plain])
    assert refused.status is JobStatus.FAILED
    assert refused.error.startswith("Cross-frame coherence at this size and step count needs about 0 MB, more than")
    assert refused.error.endswith("pick a smaller size, fewer steps or coherence off.")
    assert served.status is JobStatus.DONE


async def test_a_cancelled_cross_frame_job_frees_its_states_for_the_next(tmp_path, components):
    """Cancelled mid-clip, a cross-frame job stops and gives its share of the budget back: the next
    cross-frame job, which waited for it, renders all its frames."""
    long = dataclasses.replace(CROSS, frames=8)
    one = state_bytes(components.unet, ("up",), width=64, height=64, steps=2, strength=CROSS.strength, guided=True,
                      frames=8)  # fmt: skip
    config = Config(
        data_dir=tmp_path / "data",
        engine=EngineConfig(model="test-tiny", device="cpu", coherence_budget_mb=1.5 * one / 2**20),
    )
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        events = runtime.subscribe()
        first = await store.enqueue(JobKind.ANIMATE, long, user_id=1)
        second = await store.enqueue(JobKind.ANIMATE, CROSS.with_seed(2), user_id=2)
        runtime.notify()
        while True:  # the first job has drawn a frame: cancel it
            event = await asyncio.wait_for(events.get(), 120)
            if event.job_id == first.id and event.frames_done >= 1:
                break
        await store.request_cancel(first.id)
        await asyncio.wait_for(runtime.drain(), 120)
        cancelled, served = await store.get(first.id), await store.get(second.id)
    finally:
        await runtime.stop()
        await store.close()
    assert cancelled.status is JobStatus.CANCELLED and cancelled.frames_done < 8
    assert served.status is JobStatus.DONE and probe(served.result_path).frames == 3

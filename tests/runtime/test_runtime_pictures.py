"""The runtime with picture jobs and several control types (test-tiny, CPU)."""

import asyncio
import dataclasses
import io

import numpy as np
from PIL import Image

from engine.config import Config, EngineConfig
from engine.render.frames import load_frames
from engine.request.params import RenderParams
from engine.request.picture import prepare_picture
from engine.runtime.worker import Runtime, job_dir
from engine.store.jobs import JobKind, JobStatus
from engine.store.pictures import load_picture, picture_path
from engine.store.store import JobStore
from engine.video.read import probe

SMALL = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)


def _config(tmp_path) -> Config:
    return Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"))


def _picture(config):
    pixels = np.random.RandomState(5).randint(0, 255, (48, 80, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    fitted = prepare_picture(buffer.getvalue(), (64, 64))
    path = picture_path(config.data_dir, fitted.key)  # on one host, the picture's blob is this file
    path.parent.mkdir(parents=True)
    path.write_bytes(fitted.png)
    return fitted


async def _drained(runtime, timeout=120.0):
    await asyncio.wait_for(runtime.drain(), timeout)


def test_a_kept_picture_loads_by_key(tmp_path):
    config = _config(tmp_path)
    fitted = _picture(config)
    np.testing.assert_array_equal(load_picture(config.data_dir, fitted.key), fitted.pixels)


def test_jobs_of_different_controls_have_different_batch_keys():
    keys = {dataclasses.replace(SMALL, control=c).batch_key() for c in ("canny", "depth", "pose")}
    assert len(keys) == 3
    assert dataclasses.replace(SMALL, seed=9, prompt="a dog").batch_key() == SMALL.batch_key()


async def test_jobs_of_different_controls_never_share_a_batch(tmp_path, monkeypatch):
    from engine.render import chain

    rounds: list[list[str]] = []  # the controls of the jobs in each GPU round
    real = chain.render_round

    def recording_round(components, chains, *args, **kwargs):
        rounds.append([c.params.control for c in chains])
        return real(components, chains, *args, **kwargs)

    monkeypatch.setattr(chain, "render_round", recording_round)  # the batcher imports it at each round
    config = _config(tmp_path)
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    controls = ["canny", "depth", "canny", "pose"]
    jobs = [
        await store.enqueue(JobKind.ANIMATE, dataclasses.replace(SMALL, control=c), user_id=i)
        for i, c in enumerate(controls)
    ]
    await runtime.start()
    try:
        runtime.notify()
        await _drained(runtime)
        done = [await store.get(j.id) for j in jobs]
    finally:
        await runtime.stop()
        await store.close()
    assert all(j.status is JobStatus.DONE for j in done), [j.error for j in done]
    assert sum(len(r) for r in rounds) == 4 * SMALL.frames  # every frame of every job, in some round
    assert all(len(set(r)) == 1 for r in rounds), rounds  # never two controls in one round


async def test_a_restarted_runtime_resumes_a_picture_job_from_its_saved_frames(tmp_path):
    config = _config(tmp_path)
    fitted = _picture(config)
    params = dataclasses.replace(SMALL, frames=8, image_key=fitted.key, control="depth")
    store = await JobStore.open(config.db_path)
    job = await store.enqueue(JobKind.ANIMATE, params, user_id=1)
    first = Runtime(config, store)
    events = first.subscribe()
    await first.start()
    try:
        while (await asyncio.wait_for(events.get(), 120)).frames_done < 3:
            pass
    finally:
        await first.stop()  # mid-render: the job goes back to the queue
    stopped = await store.get(job.id)
    assert stopped.status is JobStatus.QUEUED and 3 <= stopped.frames_done < 8
    second = Runtime(config, store)
    await second.start()
    try:
        second.notify()
        await _drained(second)
        done = await store.get(job.id)
    finally:
        await second.stop()
        await store.close()
    assert done.status is JobStatus.DONE and done.attempts == 2
    assert probe(done.result_path).frames == 8
    frames = load_frames(job_dir(config, job.id) / "frames")
    assert len(frames) == 8
    np.testing.assert_array_equal(frames[0], fitted.pixels)

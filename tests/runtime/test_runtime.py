"""The runtime with test-tiny: lifecycle, failures, cancellation, batching and crash recovery."""

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from support.media import write_wav
from support.waiting import until

from engine.config import Config, EngineConfig
from engine.errors import OutOfMemory
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore
from engine.video.read import probe

SMALL = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)


def _config(tmp_path, **engine) -> Config:
    return Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu", **engine))


async def _drained(runtime, timeout=60.0):
    """``runtime.drain()``, with a bound so that a bug fails the test instead of hanging it."""
    await asyncio.wait_for(runtime.drain(), timeout)


async def _rendered(events, job_id, frames, timeout=60.0):
    """Until the runtime publishes that ``job_id`` has ``frames`` frames."""

    async def seen():
        while True:
            event = await events.get()
            if event.job_id == job_id and event.frames_done >= frames:
                return event

    return await asyncio.wait_for(seen(), timeout)


async def _finished(store, job_id):
    job = await store.get(job_id)
    return job if job.status.finished else None


@pytest.fixture
async def served(tmp_path):
    config = _config(tmp_path)
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    yield config, store, runtime
    await runtime.stop()
    await store.close()


async def test_a_job_goes_from_queued_to_done_with_progress_and_a_video(served):
    config, store, runtime = served
    events = runtime.subscribe()
    job = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1, guild_id=5, origin_id=6)
    runtime.notify()
    await _drained(runtime)
    done = await store.get(job.id)
    assert done.status is JobStatus.DONE and done.frames_done == 3 and done.error is None
    info = probe(done.result_path)
    assert (info.frames, info.width, info.video_codec) == (3, 64, "h264")
    assert done.result_path.endswith(f"animabot-{job.id}-seed1.mp4")
    seen = []
    while not events.empty():
        seen.append(events.get_nowait())
    assert [e.frames_done for e in seen if e.status is JobStatus.RUNNING] == [1, 2, 3]
    assert seen[-1].status is JobStatus.DONE and seen[-1].result_path == done.result_path
    assert os.path.exists(done.preview_path)


async def test_a_failing_job_does_not_stop_the_next(served):
    config, store, runtime = served
    bad = dataclasses.replace(SMALL, width=100)  # slipped past validation: not a multiple of 8
    first = await store.enqueue(JobKind.ANIMATE, bad, user_id=1)
    second = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=2)
    runtime.notify()
    await _drained(runtime)
    failed, ok = await store.get(first.id), await store.get(second.id)
    assert failed.status is JobStatus.FAILED and "multiple of 8" in failed.error
    assert ok.status is JobStatus.DONE


async def test_out_of_memory_fails_the_job_with_a_readable_reason_and_serving_goes_on(served, monkeypatch):
    import engine.render.chain

    config, store, runtime = served
    real = engine.render.chain.render_round
    calls = []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.render.chain, "render_round", out_of_memory_once)
    first = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1)
    runtime.notify()
    await _drained(runtime)
    second = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=2)
    runtime.notify()
    await _drained(runtime)
    failed, ok = await store.get(first.id), await store.get(second.id)
    assert failed.status is JobStatus.FAILED and failed.error.startswith("The GPU ran out of memory")
    assert ok.status is JobStatus.DONE


async def test_a_loop_stopped_by_an_unexpected_error_starts_again_and_serving_goes_on(served, monkeypatch, caplog):
    config, store, runtime = served
    real, calls = runtime.batcher.fill, []

    async def fails_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the render loop")
        await real()

    monkeypatch.setattr(runtime.batcher, "fill", fails_once)
    job = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1)
    runtime.notify()
    done = await until(lambda: _finished(store, job.id), 60, "the job to be served after the error")
    assert done.status is JobStatus.DONE
    assert any("_render_loop stopped on an error" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_cancel_while_running_stops_the_job(served):
    config, store, runtime = served
    events = runtime.subscribe()
    job = await store.enqueue(JobKind.ANIMATE, dataclasses.replace(SMALL, frames=200), user_id=1)
    runtime.notify()
    await _rendered(events, job.id, 1)
    await store.request_cancel(job.id)
    runtime.notify()
    await _drained(runtime, timeout=10)
    cancelled = await store.get(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.result_path is None
    assert cancelled.frames_done < 200


async def test_jobs_of_one_size_render_in_one_batch(served):
    config, store, runtime = served
    jobs = [await store.enqueue(JobKind.ANIMATE, SMALL.with_seed(s), user_id=s) for s in range(3)]
    runtime.notify()
    await _drained(runtime)
    done = [await store.get(j.id) for j in jobs]
    assert all(j.status is JobStatus.DONE for j in done)
    # Batched jobs start together: each was claimed before the first one finished.
    assert max(j.started_at for j in done) < min(j.finished_at for j in done)


async def test_mux_jobs_are_served_beside_renders(served, tmp_path):
    config, store, runtime = served
    render = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1)
    runtime.notify()
    await _drained(runtime)
    render = await store.get(render.id)
    wav = tmp_path / "tone.wav"
    write_wav(wav, seconds=1.0)
    mux = await store.enqueue(JobKind.MUX, None, user_id=1, parent_id=render.id, audio_path=str(wav))
    runtime.notify()
    await _drained(runtime)
    mux = await store.get(mux.id)
    assert mux.status is JobStatus.DONE
    info = probe(mux.result_path)
    assert info.audio_codec == "aac" and info.frames == 3


async def _progressed(store, job_id, frames):
    job = await store.get(job_id)
    return job.frames_done >= frames


def _start_worker(config_path, log_path):
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "--config", str(config_path), "worker"],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),
    )


async def test_a_worker_killed_mid_render_resumes_without_rendering_a_frame_twice(tmp_path):
    data = tmp_path / "data"
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'data_dir = "{data}"\n[engine]\nmodel = "test-tiny"\ndevice = "cpu"\n')
    params = RenderParams(prompt="a cat", frames=24, fps=8, steps=3, width=128, height=128, seed=4)
    store = await JobStore.open(data / "animabot.sqlite3")
    job = await store.enqueue(JobKind.ANIMATE, params, user_id=1)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    worker = _start_worker(config_path, logs[0])
    try:
        await until(lambda: _progressed(store, job.id, 3), 120, "3 frames saved by the worker process")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        interrupted = await store.get(job.id)
        assert interrupted.status is JobStatus.RUNNING and interrupted.frames_done < 24
        worker = _start_worker(config_path, logs[1])
        done = await until(lambda: _finished(store, job.id), 180, "the job finished after the restart")
    finally:
        worker.kill()
        worker.wait()
        await store.close()
    assert done.status is JobStatus.DONE and done.attempts == 2
    assert probe(done.result_path).frames == 24
    saved = [re.findall(rf"job {job.id} frame (\d+) saved", log.read_text()) for log in logs]
    everything = [int(i) for run in saved for i in run]
    assert len(everything) == len(set(everything)), "a frame was rendered twice"
    assert saved[0] and len(saved[1]) < 24  # the second run resumed instead of starting over


async def test_a_second_worker_starting_leaves_a_live_workers_job_alone(served, tmp_path):
    config, store, runtime = served
    events = runtime.subscribe()
    job = await store.enqueue(JobKind.ANIMATE, dataclasses.replace(SMALL, frames=40, steps=3), user_id=1)
    runtime.notify()
    await _rendered(events, job.id, 1)
    other = Runtime(config, await JobStore.open(config.db_path), worker="gpu-1")
    await other.start()
    try:
        assert (await store.get(job.id)).worker == runtime.worker  # not re-queued under it
        await _drained(runtime, timeout=120)
        done = await store.get(job.id)
        assert done.status is JobStatus.DONE and done.attempts == 1
    finally:
        await other.stop()
        await other.store.close()


async def test_a_job_resumed_with_every_frame_on_disk_is_encoded(tmp_path):
    from engine.render.chain import render_frames
    from engine.render.frames import save_frame
    from engine.render.weights.models import load_components
    from engine.runtime.worker import job_dir

    config = _config(tmp_path)
    store = await JobStore.open(config.db_path)
    job = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1)
    await store.claim("a-worker-that-died-before-encoding")
    components = load_components(config.engine)
    for index, frame in enumerate(render_frames(components, SMALL)):
        save_frame(job_dir(config, job.id) / "frames", index, frame)
    runtime = Runtime(config, store)
    await store.requeue_running()
    await runtime.start()
    try:
        await _drained(runtime)
        done = await store.get(job.id)
    finally:
        await runtime.stop()
        await store.close()
    assert done.status is JobStatus.DONE and probe(done.result_path).frames == 3


async def test_a_job_over_the_time_limit_fails_with_the_reason(tmp_path):
    config = _config(tmp_path, job_timeout_seconds=0.3)
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        job = await store.enqueue(JobKind.ANIMATE, dataclasses.replace(SMALL, frames=200), user_id=1)
        runtime.notify()
        await _drained(runtime, timeout=30)
        failed = await store.get(job.id)
    finally:
        await runtime.stop()
        await store.close()
    assert failed.status is JobStatus.FAILED and "longer than the 0.3 s limit" in failed.error
    assert failed.frames_done < 200


async def test_files_of_jobs_older_than_the_retention_are_removed_at_start(tmp_path):
    from engine.runtime.worker import job_dir

    config = _config(tmp_path, retention_days=1)
    store = await JobStore.open(config.db_path)
    old, recent = [await store.enqueue(JobKind.ANIMATE, SMALL, user_id=u) for u in (1, 2)]
    for job, age_days in ((old, 2), (recent, 0.5)):
        await store.claim("w")
        await store.finish(job.id, JobStatus.DONE, now=time.time() - age_days * 86400)
        job_dir(config, job.id).mkdir(parents=True)
        (job_dir(config, job.id) / "video.mp4").write_bytes(b"x")
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        await until(lambda: _gone(job_dir(config, old.id)), 10, "the old job's files removed")
        assert job_dir(config, recent.id).exists()
    finally:
        await runtime.stop()
        await store.close()


async def _gone(path):
    return not path.exists()


async def test_an_idle_runtime_compiles_the_pending_batch_size_and_still_serves(served):
    from engine.render import accel

    config, store, runtime = served
    calls = []

    class RecordingStep(accel.CompiledStep):  # records warm-ups instead of compiling (CPU test)
        def warm_up(self, width, height, rows=(2,)):
            calls.append((width, height, rows))
            return 0.0

    runtime.batcher.gpu_models.predict = RecordingStep(runtime.components)
    runtime.batcher.gpu_models.to_warm = [16]
    await _drained(runtime)  # a batch size waiting to be compiled is work left to do
    assert calls == [(512, 512, (16,))] and runtime.batcher.gpu_models.to_warm == []
    job = await store.enqueue(JobKind.ANIMATE, SMALL, user_id=1)
    runtime.notify()
    await _drained(runtime)
    done = await store.get(job.id)
    assert done.status is JobStatus.DONE  # sizes never warmed run eagerly


async def test_stopping_mid_render_puts_the_job_back_with_its_recorded_frames(tmp_path):
    config = _config(tmp_path)
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    events = runtime.subscribe()
    job = await store.enqueue(JobKind.ANIMATE, dataclasses.replace(SMALL, frames=40, steps=3), user_id=1)
    runtime.notify()
    try:
        await _rendered(events, job.id, 2)
    finally:
        await asyncio.wait_for(runtime.stop(), 60)  # mid-round: not a cancel of the member's job
    back = await store.get(job.id)
    await store.close()
    assert back.status is JobStatus.QUEUED and back.error is None and back.frames_done >= 2
    frames = sorted((config.jobs_dir / str(job.id) / "frames").glob("*.png"))
    assert len(frames) >= back.frames_done  # every frame the store counts is on disk

"""A crash loop loses nothing (issue 9): a worker process SIGKILLed ten times at random moments
over a queue of several jobs from several users; every job ends done exactly once, with every frame.

Attempts that saved a new frame never count towards giving a job up, so however often the host
dies while it makes progress, no job fails. Real worker processes (``animabot worker``), the
test-tiny model, SQLite (the default store).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time

from engine.request.params import RenderParams
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore
from engine.video.read import probe

KILLS = 10
FRAMES = 24  # enough work that a quiet machine (about 6 frames a run) still outlasts the kills


def _start(config_path, log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "--config", str(config_path), "worker"],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


async def _until_saved(log_path, worker: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Until the worker logs a saved frame; False if it exits first (nothing left to do)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"job \d+ frame \d+ saved", log_path.read_text(errors="replace")):
            return True
        if worker.poll() is not None:
            return False
        await asyncio.sleep(0.02)
    raise AssertionError(f"the worker saved no frame in {timeout:g} s: {log_path.read_text()[-2000:]}")


async def test_ten_kills_at_random_moments_lose_no_job_and_fail_none(tmp_path):
    data = tmp_path / "data"
    config_path = tmp_path / "config.toml"
    # One job at a time, so each run advances one job and the queue outlasts the kills.
    config_path.write_text(
        f'data_dir = "{data}"\n[engine]\nmodel = "test-tiny"\ndevice = "cpu"\nmax_batch = 1\n', encoding="utf-8"
    )
    rng = random.Random(10)
    store = await JobStore.open(data / "animabot.sqlite3")
    jobs = []
    for n, user in enumerate((1, 2, 3, 1, 2)):
        params = RenderParams(prompt="a cat", frames=FRAMES, fps=8, steps=1, width=64, height=64, seed=n)
        jobs.append(await store.enqueue(JobKind.ANIMATE, params, user_id=user, guild_id=1))
    logs = []
    try:
        for kill in range(KILLS):
            logs.append(tmp_path / f"run{kill}.log")
            worker = _start(config_path, logs[-1])
            try:
                assert await _until_saved(logs[-1], worker), "the queue ran out before the tenth kill"
                await asyncio.sleep(rng.uniform(0.0, 0.4))  # a random moment while it renders
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
            states = [await store.get(job.id) for job in jobs]
            assert not [job for job in states if job.status is JobStatus.FAILED]
        logs.append(tmp_path / "last.log")
        worker = _start(config_path, logs[-1])
        try:
            deadline = time.monotonic() + 180
            while not all(job.status.finished for job in [await store.get(job.id) for job in jobs]):
                assert time.monotonic() < deadline, "the last worker did not finish the queue"
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        done = [await store.get(job.id) for job in jobs]
    finally:
        await store.close()
    text = "".join(log.read_text(errors="replace") for log in logs)
    for job in done:
        assert job.status is JobStatus.DONE, (job.id, job.status, job.error)
        assert probe(job.result_path).frames == FRAMES
        assert len(re.findall(rf"job {job.id} running → done", text)) == 1  # done exactly once
    assert sum(job.attempts for job in done) > len(done)  # the kills did interrupt renders

"""Leak benchmark (issue 9, item 6): 200 tiny jobs back to back through the runtime, RSS every 20.

    python bench/leak.py --out bench/results/leak-cpu.json

One ``Runtime`` (test-tiny on the CPU) renders one job after another (each queued when the
previous one is done); the process's resident memory is read before the first and after every
20th job. The slope is fitted over the samples after the first 20 jobs (warm-up: model load,
allocator pools, the first ffmpeg runs), in MiB per 100 jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine, rss_mib, slope, write_report

from engine.config import Config, EngineConfig
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind
from engine.store.store import JobStore


async def run(data: Path, jobs: int, every: int, frames: int) -> dict:
    config = Config(data_dir=data, engine=EngineConfig(model="test-tiny", device="cpu", compile=False))
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    updates = runtime.subscribe()
    params = RenderParams(prompt="0: a cat | 1: a dog", frames=frames, fps=8, steps=2, width=64, height=64)
    samples = [{"jobs": 0, "rss_mib": rss_mib()}]
    outcomes: dict[str, int] = {}
    first_error: str | None = None
    started = time.perf_counter()
    for n in range(1, jobs + 1):
        job = await store.enqueue(JobKind.ANIMATE, params.with_seed(n), user_id=n % 7)
        runtime.notify()
        while not (job := await store.get(job.id)).status.finished:
            await updates.get()  # the runtime says something changed
        outcomes[job.status.value] = outcomes.get(job.status.value, 0) + 1
        first_error = first_error or job.error
        if n % every == 0:
            gc.collect()
            samples.append({"jobs": n, "rss_mib": rss_mib(), "seconds": round(time.perf_counter() - started, 1)})
            print(samples[-1], flush=True)
    runtime.unsubscribe(updates)
    await runtime.stop()
    await store.close()
    fitted = [s for s in samples if s["jobs"] >= every]
    per_job = slope([s["jobs"] for s in fitted], [s["rss_mib"] for s in fitted])
    return {
        "jobs": jobs,
        "first_error": first_error,
        "params": {"frames": frames, "steps": 2, "size": "64x64"},
        "outcomes": outcomes,
        "samples": samples,
        "slope_mib_per_100_jobs": round(per_job * 100, 2),
        "growth_after_warmup_mib": round(fitted[-1]["rss_mib"] - fitted[0]["rss_mib"], 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        report["leak"] = await run(Path(tmp), args.jobs, args.every, args.frames)
    write_report(report, args.out)


if __name__ == "__main__":
    asyncio.run(main())

"""Runtime benchmark: event-loop lag while a render runs, and job-store throughput.

    python bench/runtime_loop.py --out bench/results/runtime-cpu.json

1. Loop lag: a probe coroutine sleeps 10 ms in a loop and records how late it wakes while the
   runtime renders test-tiny jobs at 512×512 in its GPU thread (goal: worst lag under 50 ms).
2. Store throughput: N enqueues from concurrent coroutines, then N claims, on a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine

from engine.config import Config, EngineConfig
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore


async def loop_lag(data: Path, jobs: int, frames: int) -> dict:
    config = Config(data_dir=data, engine=EngineConfig(model="test-tiny", device="cpu"))
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    params = RenderParams(prompt="a cat in a sunflower field", frames=frames, steps=4, seed=1)
    ids = [(await store.enqueue(JobKind.ANIMATE, params.with_seed(i), user_id=i)).id for i in range(jobs)]
    runtime.notify()
    lags: list[float] = []
    started = time.perf_counter()
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)
        if len(lags) % 20 == 0:
            statuses = [(await store.get(i)).status for i in ids]
            if all(s is JobStatus.DONE for s in statuses):
                break
    seconds = time.perf_counter() - started
    await runtime.stop()
    await store.close()
    lags_ms = sorted(lag * 1000 for lag in lags)
    return {
        "jobs": jobs,
        "frames_per_job": frames,
        "size": params.size,
        "render_seconds": round(seconds, 2),
        "samples": len(lags_ms),
        "worst_lag_ms": round(lags_ms[-1], 2),
        "p99_lag_ms": round(lags_ms[int(len(lags_ms) * 0.99)], 2),
        "median_lag_ms": round(statistics.median(lags_ms), 2),
    }


async def store_throughput(data: Path, count: int) -> dict:
    store = await JobStore.open(data / "throughput.sqlite3")
    params = RenderParams(prompt="a cat", seed=1)
    started = time.perf_counter()
    await asyncio.gather(*(store.enqueue(JobKind.ANIMATE, params, user_id=i % 50) for i in range(count)))
    enqueue_s = time.perf_counter() - started
    started = time.perf_counter()
    claimed = 0
    while await store.claim("bench"):
        claimed += 1
    claim_s = time.perf_counter() - started
    await store.close()
    return {
        "jobs": count,
        "enqueue_per_s": round(count / enqueue_s),
        "claim_per_s": round(claimed / claim_s),
        "claimed": claimed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--store-jobs", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {
            "machine": machine(),
            "loop_lag": await loop_lag(Path(tmp) / "lag", args.jobs, args.frames),
            "store": await store_throughput(Path(tmp), args.store_jobs),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())

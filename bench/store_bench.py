"""Job store benchmark: SQLite vs PostgreSQL (issue 10).

For each backend, with 10,000 jobs queued by 100 users:
  1. enqueue throughput (one client, one job per transaction);
  2. claim latency (p50/p99) and throughput of 500 claims with ~10,000 still queued, for one
     claimer and for 4 concurrent claimers (each its own store: separate connections/processes' worth);
  3. progress writes carrying a frame blob of ``--blob-kb`` KB (a 512x512 PNG is ~300-400 KB),
     the write every GPU host makes per frame per job.
PostgreSQL runs in a throwaway local cluster (tests/support/postgres.py), with fsync on.

    python bench/store_bench.py --out bench/results/store-cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine, percentile  # noqa: E402

from engine.request.params import RenderParams  # noqa: E402
from engine.store.jobs import JobKind  # noqa: E402
from engine.store.store import JobStore  # noqa: E402


def store_machine() -> dict:
    """``machine.machine()`` and the versions of the two databases' client libraries."""
    import sqlite3

    import psycopg

    return {
        **machine(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
    }


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of latencies in seconds, in milliseconds."""
    return round(percentile(sorted(values), q) * 1000, 2)


async def bench(location, data_dir: Path, jobs: int, claims: int, blob_kb: int) -> dict:
    out: dict = {}
    async with await JobStore.open(location, data_dir=data_dir) as store:
        started = time.perf_counter()
        for i in range(jobs):
            params = RenderParams(prompt="a cat", frames=48, seed=i, width=512, height=512)
            await store.enqueue(JobKind.ANIMATE, params, user_id=i % 100, guild_id=1)
        out["enqueue_per_s"] = round(jobs / (time.perf_counter() - started), 1)

        latencies = []
        started = time.perf_counter()
        for _ in range(claims):
            t = time.perf_counter()
            await store.claim("bench")
            latencies.append(time.perf_counter() - t)
        out["claim_1_per_s"] = round(claims / (time.perf_counter() - started), 1)
        out["claim_latency_ms"] = {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)}

        others = [await JobStore.open(location, data_dir=data_dir) for _ in range(4)]
        try:
            latencies = []

            errors: list[str] = []

            async def claimer(s: JobStore, n: int) -> None:
                for _ in range(n):
                    t = time.perf_counter()
                    try:
                        await s.claim("bench-4")
                    except Exception as err:  # SQLite: "database is locked" once waits pass busy_timeout
                        errors.append(str(err))
                        continue
                    latencies.append(time.perf_counter() - t)

            started = time.perf_counter()
            await asyncio.gather(*(claimer(s, claims // 4) for s in others))
            out["claim_4_per_s"] = round(claims / (time.perf_counter() - started), 1)
            out["claim_4_latency_ms"] = {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)} if latencies else None
            out["claim_4_errors"] = {e: errors.count(e) for e in set(errors)}
        finally:
            for s in others:
                await s.close()

        running = [job for job in await store.active_jobs() if job.worker][:50]
        frame = data_dir / "frame.png"
        frame.parent.mkdir(parents=True, exist_ok=True)
        frame.write_bytes(os.urandom(blob_kb * 1024))
        files_of = (lambda job, n: {f"jobs/{job.id}/frames/{n:05d}.png": frame}) if not store.blobs.local else None
        started, writes = time.perf_counter(), 0
        for n in range(4):
            for job in running:
                files = files_of(job, n) if files_of else None
                await store.update_progress(job.id, n + 1, token=job.lease_token, files=files)
                writes += 1
        out["progress_with_blob_per_s"] = round(writes / (time.perf_counter() - started), 1)
        out["blob_kb"] = blob_kb if files_of else 0
        out["queued_at_end"] = len([j for j in await store.active_jobs() if not j.worker])
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--blob-kb", type=int, default=350)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from support.postgres import PostgresCluster, server_bin

    results = {"machine": store_machine(), "jobs_queued": args.jobs, "claims_measured": args.claims}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await bench(Path(tmp) / "s" / "jobs.sqlite3", Path(tmp) / "s", args.jobs, args.claims, 0)
        print("sqlite", results["sqlite"], flush=True)
        cluster = PostgresCluster(server_bin())
        cluster.start(durable=True)
        try:
            results["postgresql_version"] = cluster.psql("SHOW server_version")
            url = cluster.new_database()
            results["postgresql"] = await bench(url, Path(tmp) / "p", args.jobs, args.claims, args.blob_kb)
            print("postgresql", results["postgresql"], flush=True)
        finally:
            cluster.remove()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

"""Jobs served by a real runtime (``engine.runtime.worker.Runtime``) on a fresh SQLite store."""

from __future__ import annotations

import asyncio

from engine.config import Config
from engine.request.params import RenderParams
from engine.runtime.worker import Runtime
from engine.store.jobs import Job, JobKind
from engine.store.store import JobStore


async def served(config: Config, jobs: list[RenderParams], timeout: float = 180) -> tuple[list[Job], list]:
    """Queue ``jobs`` (member n asks for job n), let a runtime of ``config`` drain them; their stored
    rows, and the progress events it published, in order."""
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    await runtime.start()
    try:
        events = runtime.subscribe()
        queued = [await store.enqueue(JobKind.ANIMATE, params, user_id=n) for n, params in enumerate(jobs)]
        runtime.notify()
        await asyncio.wait_for(runtime.drain(), timeout)
        seen = []
        while not events.empty():
            seen.append(events.get_nowait())
        return [await store.get(job.id) for job in queued], seen
    finally:
        await runtime.stop()
        await store.close()

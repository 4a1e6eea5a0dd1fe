"""A worker frozen in the middle of a transaction (SIGSTOP, a VM paused, a stalled event loop) must
not stall the other hosts: PostgreSQL ends its session once it has been idle in the transaction for
the store's lease, which frees its locks, and the other workers take its jobs as usual."""

from __future__ import annotations

import asyncio

import pytest

from engine.request.params import RenderParams
from engine.store.claims import CLAIM_LOCK
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore, StoreUnavailable

LEASE = 1.0
HANG = 30.0  # far longer than the lease: a waiter that needed the frozen worker to wake would hang


async def test_a_worker_frozen_inside_a_transaction_loses_it_and_the_others_go_on(pg_cluster, tmp_path):
    url = pg_cluster.new_database()
    frozen = await JobStore.open(url, data_dir=tmp_path / "frozen", lease_seconds=LEASE)
    live = await JobStore.open(url, data_dir=tmp_path / "live", lease_seconds=LEASE)
    try:
        params = RenderParams(prompt="a cat", frames=4, seed=1, width=64, height=64)
        first = await live.enqueue(JobKind.ANIMATE, params, user_id=1, guild_id=1, origin_id=5)
        await live.enqueue(JobKind.ANIMATE, params, user_id=2, guild_id=1, origin_id=6)
        held = await frozen.claim("frozen")
        assert held.id == first.id
        inside, released = asyncio.Event(), asyncio.Event()

        async def freeze_mid_transaction():
            async with frozen._db.transaction() as tx:  # what a claim and a progress write hold
                await tx.lock(CLAIM_LOCK)
                await tx.execute("UPDATE jobs SET frames_done = frames_done WHERE id = ?", (held.id,))
                inside.set()
                await released.wait()

        freezing = asyncio.create_task(freeze_mid_transaction())
        await asyncio.wait_for(inside.wait(), HANG)

        second = await asyncio.wait_for(live.claim("live"), HANG)  # waits on the claim lock, not for ever
        assert second is not None and second.id != held.id
        await asyncio.sleep(LEASE)  # the frozen worker sends no heartbeat: its lease runs out
        await live.heartbeat("live")
        requeued = await asyncio.wait_for(live.requeue_running(stale_after=LEASE), HANG)  # its row lock is gone too
        assert requeued == [held.id]
        again = await asyncio.wait_for(live.claim("live"), HANG)
        assert again.id == held.id and again.lease_token > held.lease_token

        released.set()  # the worker wakes: its transaction was ended under it, and nothing it wrote stays
        with pytest.raises(StoreUnavailable):
            await freezing
        job = await live.get(held.id)
        assert (job.status, job.worker, job.lease_token) == (JobStatus.RUNNING, "live", again.lease_token)
    finally:
        await frozen.close()
        await live.close()

"""``JobStore.enqueue(check=...)``: the caller's check runs on the usage read inside the insert's
transaction, so simultaneous requests of one user cannot all pass it on the same count."""

from __future__ import annotations

import asyncio

import pytest
from support.store_jobs import params

from engine.store.jobs import JobKind, Usage


class Full(Exception):
    pass


def at_most(n: int):
    def check(usage: Usage) -> None:
        if usage.queued >= n:
            raise Full(f"{usage.queued} queued")

    return check


async def test_simultaneous_enqueues_pass_the_check_one_at_a_time(store):
    outcomes = await asyncio.gather(
        *(
            store.enqueue(JobKind.ANIMATE, params(seed=i), user_id=1, guild_id=1, check=at_most(3))
            for i in range(1, 17)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, Full) for outcome in outcomes) == 13
    assert [str(o) for o in outcomes if isinstance(o, Full)] == ["3 queued"] * 13  # each saw the others' inserts
    assert (await store.usage(1, 1)).queued == 3


async def test_a_refusal_queues_nothing_and_reaches_the_caller(store):
    await store.enqueue(JobKind.ANIMATE, params(), user_id=1, guild_id=1)
    with pytest.raises(Full):
        await store.enqueue(JobKind.ANIMATE, params(), user_id=1, guild_id=1, check=at_most(1))
    assert (await store.usage(1, 1)).queued == 1
    other = await store.enqueue(JobKind.ANIMATE, params(), user_id=2, guild_id=1, check=at_most(1))  # per user
    assert other.user_id == 2

"""Which job a claim takes: the fair order across users, the render and mux lanes, the batch size
filter, and two stores claiming from one database at once."""

from __future__ import annotations

import asyncio

import pytest
from support.store_jobs import T0, render

from engine.store.jobs import JobKind
from engine.store.store import JobStore


async def execute(store: JobStore, sql: str, rows=((),)) -> None:
    """Run ``sql`` once per row of arguments on the store's own database (to set up a state)."""

    async def body(tx):
        for args in rows:
            await tx.execute(sql, args)

    await store._db.run(body)


async def test_claims_round_robin_across_users(store):
    A, B, C = 100, 200, 300
    for user, count in ((A, 5), (B, 2), (C, 1)):
        for _ in range(count):
            await render(store, user)
    queued = await store.active_jobs()
    predicted = await store.queue_positions(job.id for job in queued)

    claimed = []
    while (job := await store.claim("w", now=T0)) is not None:  # one clock reading: order by turn
        claimed.append(job)
    assert [job.user_id for job in claimed] == [A, B, C, A, B, A, A, A]
    by_user = {}
    for job in claimed:  # each user's jobs oldest first
        by_user.setdefault(job.user_id, []).append(job.id)
    assert all(ids == sorted(ids) for ids in by_user.values())
    # queue_positions predicted exactly this order: A's jobs are 1-5, B's 6-7, C's 8
    assert [job.id for job in claimed] == [1, 6, 8, 2, 7, 3, 4, 5]
    assert predicted == {1: 1, 2: 4, 3: 6, 4: 7, 5: 8, 6: 2, 7: 5, 8: 3}
    assert await store.queue_positions([claimed[0].id]) == {claimed[0].id: 0}  # not queued any more


async def test_a_newcomer_is_served_before_users_already_served(store):
    for _ in range(3):
        await render(store, 1)
    assert (await store.claim("w")).user_id == 1
    late = await render(store, 2)
    assert await store.queue_positions([late.id]) == {late.id: 1}
    assert (await store.claim("w")).id == late.id
    assert (await store.claim("w")).user_id == 1


FAIR_CASES = [  # (queued jobs 1..n as their users, turns: when each user was last served, the order claims take)
    ([9, 9, 8], {}, [1, 3, 2]),
    ([9, 9, 8], {8: 5, 9: 4}, [1, 3, 2]),
    ([9, 8], {9: 5, 8: 4}, [2, 1]),
    ([7, 7, 7, 8, 9, 8], {7: 3}, [4, 5, 1, 6, 2, 3]),  # never served first, by their oldest job
    ([1, 2, 3, 1, 2, 1], {1: 9, 2: 8, 3: 10}, [2, 1, 3, 5, 4, 6]),
    ([], {1: 1}, []),
]


@pytest.mark.parametrize("users, turns, expected", FAIR_CASES)
async def test_queue_positions_and_claims_follow_the_fair_order(store_location, users, turns, expected):
    async with await JobStore.open(store_location) as store:
        jobs = [await render(store, user) for user in users]
        assert [job.id for job in jobs] == list(range(1, len(users) + 1))
        # as if earlier claims had served these users
        await execute(store, "INSERT INTO claim_turns (user_id, lane, turn) VALUES (?, 'render', ?)", turns.items())
        positions = await store.queue_positions(job.id for job in jobs)
        assert sorted(positions, key=positions.get) == expected
        assert sorted(positions.values()) == list(range(1, len(users) + 1))
        claimed = []
        while (job := await store.claim("w")) is not None:
            claimed.append(job.id)
        assert claimed == expected


async def test_queue_positions_count_within_each_lane_and_skip_what_is_not_queued(store):
    r1, r2 = await render(store, 1), await render(store, 2)
    mux = await store.enqueue(JobKind.MUX, None, user_id=3)
    cancelled = await render(store, 4)
    await store.request_cancel(cancelled.id)
    assert await store.queue_positions([mux.id, r2.id, r1.id, cancelled.id, 999, r1.id]) == {
        mux.id: 1,
        r2.id: 2,
        r1.id: 1,
        cancelled.id: 0,
        999: 0,
    }
    assert await store.queue_positions([]) == {}


async def test_mux_is_claimable_apart_from_renders(store):
    r1 = await render(store, 1)
    await render(store, 1)
    mux = await store.enqueue(JobKind.MUX, None, user_id=2, parent_id=r1.id, audio_path="a.mp3")
    assert await store.claim("cpu", renders=False, mux=False) is None
    assert (await store.claim("cpu", renders=False)).id == mux.id
    assert await store.claim("cpu", renders=False) is None
    assert (await store.claim("gpu", mux=False)).id == r1.id
    assert await store.queue_positions([mux.id]) == {mux.id: 0}


async def test_mux_comes_first_when_one_worker_takes_both(store):
    await render(store, 1)
    mux = await store.enqueue(JobKind.MUX, None, user_id=1)
    assert await store.queue_positions([mux.id]) == {mux.id: 1}
    assert (await store.claim("w")).id == mux.id


async def test_size_filter(store):
    small = await render(store, 1, width=512, height=512)
    wide = await render(store, 2, width=768, height=512)
    await store.enqueue(JobKind.MUX, None, user_id=3)
    # A batch only grows with the job that is next in line anyway: the wide job does not jump
    # ahead of the small one for a 768x512 batch.
    assert await store.claim("w", batch_key="512x768 canny") is None
    assert await store.claim("w", batch_key="768x512 canny") is None
    assert await store.claim("w", renders=False, batch_key="512x512 canny") is None
    assert (await store.claim("w", batch_key="512x512 canny")).id == small.id
    assert await store.claim("w", batch_key="512x512 canny") is None
    assert (await store.claim("w", batch_key="768x512 canny")).id == wide.id


async def test_two_stores_on_one_database_never_claim_the_same_job(store_location):
    async with await JobStore.open(store_location) as one, await JobStore.open(store_location) as two:
        ids = [(await render(one, i % 5)).id for i in range(50)]

        async def drain(store: JobStore, worker: str) -> list[int]:
            got = []
            while (job := await store.claim(worker)) is not None:
                got.append(job.id)
            return got

        results = await asyncio.gather(drain(one, "a"), drain(two, "b"), drain(one, "c"), drain(two, "d"))
        claimed = [job_id for got in results for job_id in got]
        assert sorted(claimed) == ids
        assert all(job.attempts == 1 for job in await one.active_jobs())

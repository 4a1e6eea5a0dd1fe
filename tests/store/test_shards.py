"""The guild → shard filter of the bot's reads (issue 23): several bot processes on one store each watch and
deliver only the jobs of their own shards' guilds; a DM (no guild) is shard 0. Snowflakes near 2**63 check
the 64-bit arithmetic on both backends."""

from __future__ import annotations

from support.store_jobs import T0, render

from engine.store.jobs import JobStatus
from engine.store.reads import Shards

# guild ids whose shard of 4 is 0, 1, 2, 3: (id >> 22) % 4; the last is near the largest snowflake
GUILDS = {0: 4 << 22, 1: (5 << 22) + 123, 2: (2**40 + 2) << 22, 3: ((2**41 - 1) << 22) | (2**22 - 1)}


def test_owns_follows_discords_rule():
    assert [Shards((shard,), 4).owns(guild) for shard, guild in GUILDS.items()] == [True] * 4
    assert not Shards((1, 2, 3), 4).owns(GUILDS[0])
    assert Shards((0,), 4).owns(None), "a job from no guild is on shard 0"
    assert GUILDS[3] < 2**63


async def test_active_and_undelivered_jobs_of_some_shards_only(store):
    jobs = {shard: await render(store, 1, guild=guild, now=T0 + shard) for shard, guild in GUILDS.items()}
    dm = await render(store, 1, guild=None, now=T0 + 9)

    assert [j.id for j in await store.active_jobs(shards=Shards((0,), 4))] == [jobs[0].id, dm.id]
    assert [j.id for j in await store.active_jobs(shards=Shards((1, 3), 4))] == [jobs[1].id, jobs[3].id]
    assert [j.id for j in await store.active_jobs(shards=Shards((0, 1, 2, 3), 4))] == [
        j.id for j in await store.active_jobs()
    ]
    assert await store.active_jobs(guild_id=GUILDS[2], shards=Shards((1,), 4)) == []

    for _ in range(5):
        job = await store.claim("w")
        await store.finish(job.id, JobStatus.DONE, now=T0 + 10 + job.id)
    assert await store.active_jobs(shards=Shards((2,), 4)) == []
    assert [j.id for j in await store.undelivered(shards=Shards((2,), 4))] == [jobs[2].id]
    assert [j.id for j in await store.undelivered(shards=Shards((0,), 4))] == [jobs[0].id, dm.id]
    assert len(await store.undelivered()) == 5

    await store.set_posts(jobs[2].id, result_post_id=77)  # delivered by shard 2's process
    assert await store.undelivered(shards=Shards((2,), 4)) == []
    assert len(await store.undelivered(shards=Shards((0, 1, 3), 4))) == 4

"""Limits hold against simultaneous requests (issue 20, defect 3): the check runs on the usage read in
the transaction that inserts the job, on both backends, so 16 requests of one member fired at once
queue exactly what the guild allows and the others get the limit's sentence.

Every way a render is queued (/animate, 🔄, Re-roll, Remix, the context menus) goes through
``JobActions.queue_render``, which these tests call directly.
"""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.actions import JobActions
from bot.guild_limits import set_limits
from engine.config import Config, EngineConfig, LimitsConfig
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore

GUILD, CHANNEL, MEMBER = 10, 20, 30
PARAMS = RenderParams(prompt="a cat", frames=2, fps=8, steps=2, width=128, height=128)
AT_ONCE = 16


async def fire(store_location, tmp_path, limits: dict) -> tuple[list[Exception], list]:
    """Fire ``AT_ONCE`` requests of one member at once under ``limits``; (the refusals, the queued jobs)."""
    config = Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"))
    async with await JobStore.open(store_location, data_dir=config.data_dir) as store:
        await set_limits(store, GUILD, defaults=config.limits, **limits)
        actions = JobActions(discord.Client(intents=discord.Intents.none()), store, config, wake=lambda: None)
        outcomes = await asyncio.gather(
            *(
                actions.queue_render(JobKind.ANIMATE, PARAMS, user_id=MEMBER, guild_id=GUILD, channel_id=CHANNEL)
                for _ in range(AT_ONCE)
            ),
            return_exceptions=True,
        )
        queued = [job for job in await store.active_jobs(GUILD) if job.status is JobStatus.QUEUED]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    for refusal in refusals:
        if not isinstance(refusal, UserError):
            raise refusal
    return refusals, queued


async def test_simultaneous_requests_queue_no_more_than_the_queue_limit(store_location, tmp_path):
    limits = {"max_queued_per_user": 3, "daily_quota": 100, "cooldown_seconds": 0}
    refusals, queued = await fire(store_location, tmp_path, limits)
    assert len(queued) == 3
    assert [str(r) for r in refusals] == [
        "You already have 3 jobs waiting; wait for one to finish or cancel one with /cancel."
    ] * (AT_ONCE - 3)


async def test_simultaneous_requests_queue_no_more_than_the_daily_quota(store_location, tmp_path):
    limits = {"max_queued_per_user": 100, "daily_quota": 2, "cooldown_seconds": 0}
    refusals, queued = await fire(store_location, tmp_path, limits)
    assert len(queued) == 2
    assert len(refusals) == AT_ONCE - 2
    assert all(
        str(r).startswith("You have used your 2 renders for today; the quota resets at 00:00 UTC") for r in refusals
    )


async def test_simultaneous_requests_respect_the_cooldown(store_location, tmp_path):
    limits = {"max_queued_per_user": 100, "daily_quota": 100, "cooldown_seconds": 3600}
    refusals, queued = await fire(store_location, tmp_path, limits)
    assert len(queued) == 1
    assert len(refusals) == AT_ONCE - 1
    assert all(str(r).startswith("Please wait ") and str(r).endswith(" between requests.") for r in refusals)


@pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)
async def test_other_members_are_not_held_to_ones_limit(store_location, tmp_path):
    """The lock and the count are per member: another member's request still queues."""
    config = Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"),
                    limits=LimitsConfig(max_queued_per_user=1, cooldown_seconds=0))  # fmt: skip
    async with await JobStore.open(store_location, data_dir=config.data_dir) as store:
        actions = JobActions(discord.Client(intents=discord.Intents.none()), store, config, wake=lambda: None)
        jobs = await asyncio.gather(
            *(
                actions.queue_render(JobKind.ANIMATE, PARAMS, user_id=user, guild_id=GUILD, channel_id=CHANNEL)
                for user in (1, 2, 3)
            )
        )
        assert sorted(job.user_id for job in jobs) == [1, 2, 3]


async def test_simultaneous_mux_requests_queue_no_more_than_the_queue_limit(store_location, tmp_path):
    """/mux counts against the member's queue (issue 20, defect 4) through the same atomic check."""
    config = Config(data_dir=tmp_path / "data", engine=EngineConfig(model="test-tiny", device="cpu"))
    async with await JobStore.open(store_location, data_dir=config.data_dir) as store:
        await set_limits(store, GUILD, defaults=config.limits, max_queued_per_user=1, cooldown_seconds=0)
        video = await store.enqueue(JobKind.ANIMATE, PARAMS.with_seed(1), user_id=MEMBER, guild_id=GUILD)
        await store.claim("w")
        video = await store.finish(video.id, JobStatus.DONE)  # the member's finished video, not in their queue
        actions = JobActions(discord.Client(intents=discord.Intents.none()), store, config, wake=lambda: None)
        outcomes = await asyncio.gather(
            *(
                actions.queue_mux(video, f"uploads/{n}.wav", user_id=MEMBER, guild_id=GUILD, channel_id=CHANNEL)
                for n in range(AT_ONCE)
            ),
            return_exceptions=True,
        )
        queued = [job for job in await store.active_jobs(GUILD) if job.status is JobStatus.QUEUED]
    assert [job.kind for job in queued] == [JobKind.MUX]
    assert [str(o) for o in outcomes if isinstance(o, Exception)] == [
        "You already have 1 job waiting; wait for it to finish or cancel it with /cancel."
    ] * (AT_ONCE - 1)

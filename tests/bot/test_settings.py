"""Guild settings: check_request one rule at a time, with the exact sentence the user reads, and the
limits kept in the store (set, reset, persisted)."""

from __future__ import annotations

import pytest

from bot.guild_limits import GuildLimits, check_changes, check_request, get_limits, reset_limits, set_limits
from engine.config import LimitsConfig
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import JobKind, Usage
from engine.store.store import JobStore

MIDNIGHT = 19_800 * 86400.0  # some 00:00 UTC
NOW = MIDNIGHT + 20 * 3600 + 48 * 60  # 20:48:00 UTC
LIMITS = GuildLimits(
    max_frames=48,
    max_steps=30,
    max_side=768,
    max_fps=24,
    daily_quota=10,
    max_queued_per_user=3,
    cooldown_seconds=10,
    upload_limit_bytes=8 << 20,
)
OK = RenderParams(prompt="a cat", frames=48, steps=30, width=768, height=512, fps=24, seed=1)
FRESH = Usage(renders_today=0, queued=0, last_request_at=None)


def check(params=OK, usage=FRESH, limits=LIMITS, channel_id=None, now=NOW):
    return check_request(limits, params, usage, channel_id=channel_id, now=now)


def test_within_every_limit():
    assert check() is None
    assert check(usage=Usage(renders_today=9, queued=2, last_request_at=NOW - 10)) is None


def test_defaults_come_from_the_config():
    assert GuildLimits() == GuildLimits.from_config(LimitsConfig())
    assert GuildLimits.from_config(LimitsConfig(max_frames=5)).max_frames == 5


def test_frames():
    assert check(RenderParams(prompt="x", frames=120)) == "This server allows at most 48 frames; you asked for 120."


def test_steps():
    assert check(RenderParams(prompt="x", steps=50)) == "This server allows at most 30 steps; you asked for 50."


def test_side():
    assert check(RenderParams(prompt="x", width=512, height=1024)) == (
        "This server allows at most 768 pixels per side; you asked for 512x1024."
    )


def test_fps():
    assert check(RenderParams(prompt="x", fps=30)) == "This server allows at most 24 fps; you asked for 30."


def test_daily_quota():
    assert check(usage=Usage(renders_today=10)) == (
        "You have used your 10 renders for today; the quota resets at 00:00 UTC (in 3 h 12 min)."
    )
    assert check(usage=Usage(renders_today=10), now=NOW + 3 * 3600 + 11 * 60 + 59.5) == (
        "You have used your 10 renders for today; the quota resets at 00:00 UTC (in 1 min)."
    )
    one = GuildLimits(daily_quota=1)
    assert check(usage=Usage(renders_today=1), limits=one, now=NOW - 48 * 60) == (
        "You have used your 1 render for today; the quota resets at 00:00 UTC (in 4 h)."
    )
    assert check(limits=GuildLimits(daily_quota=0)) == (
        "Renders are turned off on this server (its daily quota is 0); ask an admin to raise it."
    )


def test_queued():
    assert check(usage=Usage(queued=3)) == (
        "You already have 3 jobs waiting; wait for one to finish or cancel one with /cancel."
    )
    assert check(usage=Usage(queued=1), limits=GuildLimits(max_queued_per_user=1)) == (
        "You already have 1 job waiting; wait for it to finish or cancel it with /cancel."
    )


def test_cooldown():
    assert check(usage=Usage(last_request_at=NOW - 3)) == "Please wait 7 more seconds between requests."
    assert check(usage=Usage(last_request_at=NOW - 9.5)) == "Please wait 1 more second between requests."
    assert check(usage=Usage(last_request_at=NOW - 3), limits=GuildLimits(cooldown_seconds=0)) is None


def test_channel():
    only = GuildLimits(allowed_channel_ids=(123,))
    assert check(limits=only, channel_id=7) == "Renders are not allowed in this channel; use <#123>."
    assert check(limits=only, channel_id=123) is None
    assert check(limits=only, channel_id=None) is None  # DMs and the command line
    three = GuildLimits(allowed_channel_ids=(1, 2, 3))
    assert check(limits=three, channel_id=7) == "Renders are not allowed in this channel; use <#1>, <#2> or <#3>."
    assert check(None, limits=only, channel_id=7) == "Renders are not allowed in this channel; use <#123>."


def test_mux_requests_count_against_the_quota_queue_and_cooldown_but_have_no_settings():
    assert check(None, usage=Usage(renders_today=9, queued=2, last_request_at=NOW - 10)) is None
    assert check(None, usage=Usage(renders_today=10)).startswith("You have used your 10 renders for today")
    assert check(None, usage=Usage(queued=3)).startswith("You already have 3 jobs waiting")
    assert check(None, usage=Usage(last_request_at=NOW - 4)) == "Please wait 6 more seconds between requests."


def test_most_lasting_obstacle_first():
    greedy = RenderParams(prompt="x", frames=120)
    everything = Usage(renders_today=10, queued=3, last_request_at=NOW)
    only = GuildLimits(daily_quota=10, allowed_channel_ids=(123,))
    assert check(greedy, everything, only, channel_id=7).startswith("Renders are not allowed")
    assert check(greedy, everything, LIMITS).startswith("You have used your 10 renders")
    assert check(greedy, Usage(queued=3, last_request_at=NOW)).startswith("This server allows at most 48 frames")
    assert check(usage=Usage(queued=3, last_request_at=NOW)).startswith("You already have 3 jobs")


def test_limit_changes_are_checked():
    assert check_changes({"max_frames": 24, "allowed_channel_ids": ["5", 6, 5]}) == {
        "max_frames": 24,
        "allowed_channel_ids": (5, 6),
    }
    assert LIMITS.with_changes(max_fps=12).max_fps == 12
    with pytest.raises(UserError, match=r"^Unknown limit\(s\) bogus; choose from: max_frames, "):
        check_changes({"bogus": 1})
    with pytest.raises(UserError, match="^max_side must be between 64 and 2048, got 4096.$"):
        check_changes({"max_side": 4096})
    with pytest.raises(UserError, match="^cooldown_seconds must be at least 0, got -1.$"):
        check_changes({"cooldown_seconds": -1})
    with pytest.raises(UserError, match="^daily_quota must be a whole number, got 'lots'.$"):
        check_changes({"daily_quota": "lots"})
    with pytest.raises(UserError, match="allowed_channel_ids must be channel ids"):
        check_changes({"allowed_channel_ids": ["#general"]})


# -- kept in the store ------------------------------------------------------------------------------
async def test_quota_and_cooldown_through_check_request(tmp_path):
    defaults = LimitsConfig()
    async with await JobStore.open(tmp_path / "jobs.sqlite3") as store:
        limits = await set_limits(
            store, 1, defaults=defaults, daily_quota=2, cooldown_seconds=10, max_queued_per_user=5
        )

        p = RenderParams(prompt="a cat", frames=8, seed=1)

        async def render(now: float) -> None:
            await store.enqueue(JobKind.ANIMATE, p, user_id=1, guild_id=1, origin_id=5, now=now)

        await render(MIDNIGHT - 100)
        await render(MIDNIGHT - 30)
        usage = await store.usage(1, 1, now=MIDNIGHT - 10)
        assert check_request(limits, p, usage, now=MIDNIGHT - 10) == (
            "You have used your 2 renders for today; the quota resets at 00:00 UTC (in 1 min)."
        )
        usage = await store.usage(1, 1, now=MIDNIGHT + 10)
        assert check_request(limits, p, usage, now=MIDNIGHT + 10) is None

        await render(MIDNIGHT + 10)
        usage = await store.usage(1, 1, now=MIDNIGHT + 13)
        assert check_request(limits, p, usage, now=MIDNIGHT + 13) == "Please wait 7 more seconds between requests."
        assert check_request(limits, p, usage, now=MIDNIGHT + 20) is None


async def test_limits_set_reset_and_persist(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    config = LimitsConfig(max_frames=32, daily_quota=5)
    async with await JobStore.open(path) as store:
        assert await get_limits(store, 1, defaults=config) == GuildLimits.from_config(config)
        changed = await set_limits(store, 1, defaults=config, max_frames=24, allowed_channel_ids=[10, 11])
        assert (changed.max_frames, changed.daily_quota, changed.allowed_channel_ids) == (24, 5, (10, 11))
        assert (await set_limits(store, 1, defaults=config, cooldown_seconds=0)).max_frames == 24  # earlier kept
        assert (await get_limits(store, 2, defaults=config)).max_frames == 32  # other guilds untouched
        with pytest.raises(UserError, match="Unknown limit"):
            await set_limits(store, 1, defaults=config, max_frame=3)
        with pytest.raises(UserError, match="max_frames must be between 1 and 240, got 0"):
            await set_limits(store, 1, defaults=config, max_frames=0)

    async with await JobStore.open(path) as store:
        kept = await get_limits(store, 1, defaults=config)
        assert (kept.max_frames, kept.cooldown_seconds, kept.allowed_channel_ids) == (24, 0, (10, 11))
        assert await store.get_settings(1) == {"max_frames": 24, "allowed_channel_ids": [10, 11], "cooldown_seconds": 0}
        # None: back to the default
        assert (await set_limits(store, 1, defaults=config, max_frames=None)).max_frames == 32
        assert await reset_limits(store, 1, defaults=config) == GuildLimits.from_config(config)

    async with await JobStore.open(path) as store:
        assert await get_limits(store, 1, defaults=config) == GuildLimits.from_config(config)


async def test_the_configured_defaults_apply_under_the_stored_overrides(tmp_path):
    async with await JobStore.open(tmp_path / "jobs.sqlite3") as store:
        await set_limits(store, 1, defaults=LimitsConfig(), max_steps=9)
        limits = await get_limits(store, 1, defaults=LimitsConfig(max_frames=7, max_steps=20))
        assert (limits.max_frames, limits.max_steps) == (7, 9)

"""check_request: one rule at a time, with the exact sentence the user reads."""

from __future__ import annotations

import pytest

from engine.config import LimitsConfig
from engine.errors import UserError
from engine.queue.limits import GuildLimits, Usage, check_changes, check_request
from engine.render.params import RenderParams

NOW = 19_800 * 86400.0 + 20 * 3600 + 48 * 60  # 20:48:00 UTC
LIMITS = GuildLimits(
    max_frames=48, max_steps=30, max_side=768, max_fps=24, daily_quota=10, max_queued_per_user=3,
    cooldown_seconds=10, upload_limit_bytes=8 << 20,
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


def test_mux_requests_only_check_the_channel():
    assert check(None, usage=Usage(renders_today=99, queued=99, last_request_at=NOW)) is None


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
        "max_frames": 24, "allowed_channel_ids": (5, 6)}
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

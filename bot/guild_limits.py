"""Guild limits: what each guild allows, kept in the store, and the check of one request against them.

The store keeps each guild's overrides as a neutral JSON object (``get_settings``/``update_settings``)
and counts usage; this module turns the overrides and the configured defaults
(``engine.config.LimitsConfig``) into :class:`GuildLimits`, and :func:`check_request` words the
refusal a member reads in Discord.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.config import LimitsConfig
from engine.errors import UserError
from engine.request.params import CONTROLS, RenderParams
from engine.request.safety import SAFETY_MODES
from engine.store.jobs import DAY, Usage

if TYPE_CHECKING:
    from engine.store.store import JobStore


@dataclass(frozen=True)
class GuildLimits:
    """What one guild allows; the defaults are those of ``LimitsConfig``."""

    max_frames: int = LimitsConfig.max_frames
    max_steps: int = LimitsConfig.max_steps
    max_side: int = LimitsConfig.max_side
    max_fps: int = LimitsConfig.max_fps
    daily_quota: int = LimitsConfig.daily_quota
    max_queued_per_user: int = LimitsConfig.max_queued_per_user
    cooldown_seconds: int = LimitsConfig.cooldown_seconds
    upload_limit_bytes: int = LimitsConfig.upload_limit_bytes
    allowed_channel_ids: tuple[int, ...] = ()  # empty: every channel
    allowed_models: tuple[str, ...] = ()  # configured model names members may pick; empty: all
    allowed_loras: tuple[str, ...] = ()  # configured LoRA names; empty: all
    allow_pictures: bool = True  # members may start a video from their own picture
    allowed_controls: tuple[str, ...] = ()  # the control types members may use; empty: every one
    safety: str = "block"  # the content policy outside age-restricted channels: block, spoiler or off
    banned_words: tuple[str, ...] = ()  # refused in prompts here, besides the host's [safety] banned_words

    @classmethod
    def from_config(cls, config: LimitsConfig) -> GuildLimits:
        return cls(**dataclasses.asdict(config))

    def with_changes(self, **changes) -> GuildLimits:
        """A copy with ``changes`` checked and applied; ``UserError`` names the first bad one."""
        return dataclasses.replace(self, **check_changes(changes))


LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(GuildLimits))

# name → (lowest allowed, highest allowed or None): the host's [limits] schema's ranges, whose highest
# are the engine's own hard limits.
_RANGES: dict[str, tuple[int, int | None]] = {
    name: LimitsConfig.bounds(name) for name in (f.name for f in dataclasses.fields(LimitsConfig))
}


def check_changes(changes: dict) -> dict:
    """Validate limit changes as an admin typed them; return them normalised.

    ``None`` values are kept: :func:`set_limits` reads them as "back to the default".
    """
    unknown = sorted(set(changes) - set(LIMIT_NAMES))
    if unknown:
        raise UserError(f"Unknown limit(s) {', '.join(unknown)}; choose from: {', '.join(LIMIT_NAMES)}.")
    checked: dict = {}
    for name, value in changes.items():
        if value is None:
            checked[name] = None
        elif name == "allowed_channel_ids":
            checked[name] = _channel_ids(value)
        elif name in NAME_LISTS:
            checked[name] = _names(name, value)
        elif name == "allow_pictures":
            if not isinstance(value, bool):
                raise UserError(f"allow_pictures must be true or false, got {value!r}.")
            checked[name] = value
        elif name == "allowed_controls":
            checked[name] = _controls(value)
        elif name == "safety":
            if value not in SAFETY_MODES:
                raise UserError(f"safety must be one of {', '.join(SAFETY_MODES)}, got {value!r}.")
            checked[name] = value
        elif name == "banned_words":
            checked[name] = _banned_words(value)
        else:
            low, high = _RANGES[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{name} must be a whole number, got {value!r}.")
            if value < low or (high is not None and value > high):
                bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise UserError(f"{name} must be {bounds}, got {value}.")
            checked[name] = value
    return checked


NAME_LISTS = ("allowed_models", "allowed_loras")


def _names(limit: str, value) -> tuple[str, ...]:
    """Model or LoRA names as an admin gave them (whether they are configured is ``bot.model_choices``' check)."""
    if isinstance(value, str):
        value = value.split(",")
    names = [str(item).strip() for item in value if str(item).strip()]
    if not names:
        raise UserError(f"{limit} needs at least one name.")
    return tuple(dict.fromkeys(names))


def _channel_ids(value) -> tuple[int, ...]:
    if isinstance(value, (int, str)):
        value = [value]
    ids = []
    for item in value:
        try:
            ids.append(int(item))
        except (TypeError, ValueError):
            raise UserError(f"allowed_channel_ids must be channel ids, got {item!r}.") from None
    return tuple(dict.fromkeys(ids))  # drop repeats, keep order


def _banned_words(value) -> tuple[str, ...]:
    """``"gore, nude"`` or a list → the words (an empty list: none besides the host's)."""
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    found = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if any(len(item) > 50 for item in found) or len(found) > 100:
        raise UserError("banned_words takes at most 100 words or phrases of at most 50 characters each.")
    return found


def _controls(value) -> tuple[str, ...]:
    """``"depth, pose"`` or a list → the control names, checked; ``"all"`` (or nothing) → every one."""
    names = [n.strip().lower() for n in value.split(",")] if isinstance(value, str) else [str(n) for n in value]
    names = [n for n in names if n]
    if not names or names == ["all"]:
        return ()
    unknown = [n for n in names if n not in CONTROLS]
    if unknown:
        raise UserError(f"Unknown control(s) {', '.join(unknown)}; choose from: {', '.join(CONTROLS)} (or all).")
    return tuple(dict.fromkeys(names))


# -- stored per guild --------------------------------------------------------------------------------
async def get_limits(store: JobStore, guild_id: int, *, defaults: LimitsConfig) -> GuildLimits:
    """The configured defaults with this guild's stored overrides on top."""
    return _apply(defaults, await store.get_settings(guild_id))


async def set_limits(store: JobStore, guild_id: int, *, defaults: LimitsConfig, **changes) -> GuildLimits:
    """Override some limits of a guild (``UserError`` for an unknown name or bad value).

    A value of ``None`` puts that limit back to the configured default.
    """
    changes = check_changes(changes)
    if not changes:
        return await get_limits(store, guild_id, defaults=defaults)
    stored = {name: list(value) if isinstance(value, tuple) else value for name, value in changes.items()}
    return _apply(defaults, await store.update_settings(guild_id, stored))


async def reset_limits(store: JobStore, guild_id: int, *, defaults: LimitsConfig) -> GuildLimits:
    """Forget every override of a guild: back to the configured defaults."""
    await store.clear_settings(guild_id)
    return GuildLimits.from_config(defaults)


def _apply(defaults: LimitsConfig, stored: dict) -> GuildLimits:
    overrides = {name: value for name, value in stored.items() if name in LIMIT_NAMES}
    for name in ("allowed_channel_ids", "allowed_controls", "banned_words", *NAME_LISTS):
        if name in overrides:
            overrides[name] = tuple(overrides[name])
    return dataclasses.replace(GuildLimits.from_config(defaults), **overrides)


# -- one request -----------------------------------------------------------------------------------
def check_request(
    limits: GuildLimits,
    params: RenderParams | None,
    usage: Usage,
    *,
    channel_id: int | None = None,
    now: float,
) -> str | None:
    """``None`` when the request may be queued, else the one sentence the user should read.

    The most lasting obstacle is reported first: the channel, then the daily quota (fixing the
    settings would not help), then each setting, then the queue and the cooldown, which clear by
    themselves. ``params=None`` is a request that renders nothing (mux): it counts against the quota,
    the queue and the cooldown like a render, and has no settings to check.
    ``channel_id=None`` (a DM or the command line) skips the channel check.
    """
    if channel_id is not None and limits.allowed_channel_ids and channel_id not in limits.allowed_channel_ids:
        places = _or_list([f"<#{c}>" for c in limits.allowed_channel_ids])
        return f"Renders are not allowed in this channel; use {places}."
    if limits.daily_quota <= 0:
        return "Renders are turned off on this server (its daily quota is 0); ask an admin to raise it."
    if usage.renders_today >= limits.daily_quota:
        reset = (math.floor(now / DAY) + 1) * DAY
        return (
            f"You have used your {_count(limits.daily_quota, 'render')} for today; "
            f"the quota resets at 00:00 UTC (in {_duration(reset - now)})."
        )

    refusal = None if params is None else _check_picture_and_control(limits, params) or _check_sizes(limits, params)
    if refusal is not None:
        return refusal

    if usage.queued >= limits.max_queued_per_user:
        if usage.queued == 1:
            return "You already have 1 job waiting; wait for it to finish or cancel it with /cancel."
        return f"You already have {usage.queued} jobs waiting; wait for one to finish or cancel one with /cancel."

    if usage.last_request_at is not None and limits.cooldown_seconds > 0:
        left = usage.last_request_at + limits.cooldown_seconds - now
        if left > 0:
            return f"Please wait {_count(math.ceil(left), 'more second')} between requests."
    return None


def _check_sizes(limits: GuildLimits, params: RenderParams) -> str | None:
    side = max(params.width, params.height)
    for allowed, asked, unit in (
        (limits.max_frames, params.frames, "frames"),
        (limits.max_steps, params.steps, "steps"),
        (limits.max_side, side, "pixels per side"),
        (limits.max_fps, params.fps, "fps"),
    ):
        if asked > allowed:
            shown = params.size if unit == "pixels per side" else asked
            return f"This server allows at most {allowed} {unit}; you asked for {shown}."
    return None


def _check_picture_and_control(limits: GuildLimits, params: RenderParams) -> str | None:
    if params.image_key is not None and not limits.allow_pictures:
        return "This server does not allow starting from a picture; leave out the image, or ask an admin."
    if limits.allowed_controls and params.control not in limits.allowed_controls:
        return (
            f"This server does not allow the {params.control} control; use {_or_list(list(limits.allowed_controls))}."
        )
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _duration(seconds: float) -> str:
    """``11520`` → ``"3 h 12 min"``; rounded up to the minute so it never reads "0 min"."""
    hours, minutes = divmod(max(1, math.ceil(seconds / 60)), 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


# -- clips people share (issue 12) ------------------------------------------------------------------
def lower_smooth(limits: GuildLimits, params: RenderParams) -> RenderParams:
    """``params`` with the largest smoothing factor (at most the one asked) whose output fps the guild allows.

    The rendered fps itself is checked by :func:`check_request`; smoothing only multiplies it.
    """
    factor = params.smooth
    while factor > 1 and params.fps * factor > limits.max_fps:
        factor //= 2
    return params if factor == params.smooth else dataclasses.replace(params, smooth=factor)

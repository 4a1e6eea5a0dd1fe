"""The content policy where a request is made: the banned words, and the mode its job gets.

The rule is ``engine.request.safety``'s; this module reads what it needs in Discord: the guild's
policy and banned words (``bot.guild_limits``), and whether the channel is age-restricted (a thread
takes its parent channel's mark, as ``discord.Thread.is_nsfw`` reads it). The mode is stored with
the job (``JobStore.enqueue(safety=...)``), so the worker checks the start picture and frames of a
re-roll or a Remix as the channel where it was asked for requires, whatever channel made the first.
"""

from __future__ import annotations

import logging

import discord

from bot.guild_limits import get_limits
from engine.config import Config
from engine.errors import UserError
from engine.ops import metrics
from engine.request.params import RenderParams
from engine.request.safety import check_prompts, job_mode
from engine.store.jobs import Job
from engine.store.store import JobStore

log = logging.getLogger(__name__)


async def age_restricted(client: discord.Client, channel_id: int | None) -> bool:
    """Whether Discord marks the channel (or a thread's channel) age-restricted. A channel the bot
    cannot see (or a client not logged in cannot ask about) counts as not age-restricted: the
    stricter reading."""
    if channel_id is None:
        return False
    channel = client.get_channel(channel_id)
    if channel is None:
        if client.user is None:  # not logged in: nothing to ask Discord with
            return False
        try:
            channel = await client.fetch_channel(channel_id)
        except discord.HTTPException:
            return False
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw is not None and is_nsfw())


async def request_safety(
    client: discord.Client,
    store: JobStore,
    config: Config,
    params: RenderParams,
    *,
    user_id: int,
    guild_id: int,
    channel_id: int | None,
) -> str:
    """The mode (``off``, ``block`` or ``spoiler``) of a job ``params`` asks for in this channel;
    ``UserError`` when a prompt uses a banned word (the guild's or the host's), unless the guild's
    policy is ``off``."""
    limits = await get_limits(store, guild_id, defaults=config.limits)
    if limits.safety != "off":
        refusal = check_prompts(
            (params.prompt, params.negative_prompt), (*config.safety.banned_words, *limits.banned_words)
        )
        if refusal is not None:
            refused_words(user_id, guild_id, channel_id)
            raise UserError(refusal)
    marked = await age_restricted(client, channel_id)
    return job_mode(limits.safety, age_restricted=marked, age_restricted_policy=config.safety.age_restricted)


async def mux_safety(
    client: discord.Client, store: JobStore, config: Config, target: Job, *, user_id: int, guild_id: int,
    channel_id: int | None,
) -> str:  # fmt: skip
    """The mode of a ``/mux`` job putting audio on ``target``'s video in this channel: the policy where
    ``/mux`` is used, whatever channel made the video. Its prompt's words are checked again here (a
    video made in an age-restricted channel or under another policy may use one); the worker checks
    its frames under the mode (``engine.runtime.worker``)."""
    limits = await get_limits(store, guild_id, defaults=config.limits)
    if limits.safety != "off" and target.params is not None:
        prompts = (target.params.prompt, target.params.negative_prompt)
        if check_prompts(prompts, (*config.safety.banned_words, *limits.banned_words)) is not None:
            refused_words(user_id, guild_id, channel_id)
            raise UserError(
                f"Job {target.id}'s prompt uses a word this server does not allow here; "
                "/mux it in an age-restricted channel or pick another video."
            )
    marked = await age_restricted(client, channel_id)
    return job_mode(limits.safety, age_restricted=marked, age_restricted_policy=config.safety.age_restricted)


def refused_words(user_id: int, guild_id: int, channel_id: int | None) -> None:
    """The moderators' log line and count of a request refused for a banned word (never the word)."""
    log.info("user %d in guild %d channel %s refused: a banned word", user_id, guild_id, channel_id)
    metrics.SAFETY_FLAGGED.labels("block", "words").inc()

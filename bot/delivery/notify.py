"""Telling a member what happened to their job, where they can read it.

A job queued by a slash command or a button keeps the interaction's application id and token
(``remember``; the store's ``job_replies`` handle). :func:`tell` uses, in this order:

1. the interaction's follow-up webhook, privately, while its token lives (Discord: 15 minutes);
2. the job's channel, mentioning (and so notifying) the member;
3. a direct message.

Each step that Discord refuses falls through to the next; the first that works is returned.
"""

from __future__ import annotations

import logging
import time

import discord

from bot.replies import NO_MENTIONS
from bot.text import limits
from bot.text.messages import user_ref
from engine.store.jobs import Job
from engine.store.store import JobStore

log = logging.getLogger(__name__)

TOKEN_SECONDS = 15 * 60  # an interaction token's life
TOKEN_MARGIN = 60  # not in its last minute: a follow-up sent then could arrive after it expired


async def remember(store: JobStore, job_id: int, interaction: discord.Interaction) -> None:
    """Keep the interaction's follow-up webhook for ``job_id`` (best effort: logged if it fails)."""
    try:
        handle = f"{interaction.application_id}:{interaction.token}"
        await store.set_reply_handle(job_id, handle, now=interaction.created_at.timestamp())
    except Exception:
        log.exception("job %d: could not keep the interaction's token", job_id)


async def followup(
    client: discord.Client, store: JobStore, job_id: int, now: float | None = None
) -> discord.Webhook | None:
    """The follow-up webhook of the interaction that queued ``job_id``, if its token still lives."""
    stored = await store.reply_handle(job_id)
    if stored is None:
        return None
    handle, given_at = stored
    if (now if now is not None else time.time()) - given_at > TOKEN_SECONDS - TOKEN_MARGIN:
        return None
    application_id, token = handle.split(":", 1)
    # What discord.py's own ``Interaction.followup`` builds (type 3, an application webhook, which
    # may send ephemeral messages); ``Webhook.partial`` would make an incoming one, which may not.
    data = {"id": int(application_id), "type": 3, "token": token}
    return discord.Webhook.from_state(data=data, state=client._connection)


async def tell(client: discord.Client, store: JobStore, job: Job, text: str) -> str | None:
    """Tell ``job``'s member ``text``; returns ``"followup"``, ``"channel"``, ``"dm"`` or ``None``."""
    text = limits.content(text)
    webhook = await followup(client, store, job.id)
    if webhook is not None:
        try:
            await webhook.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return "followup"
        except discord.HTTPException as err:
            log.info("job %d: the follow-up webhook refused the notice (%s)", job.id, err)
    if job.origin_id is not None:
        channel = client.get_partial_messageable(job.origin_id, guild_id=job.guild_id)
        try:
            await channel.send(
                limits.fill("{who} {text}", who=user_ref(job.user_id), text=text),
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)]),
            )
            return "channel"
        except discord.HTTPException as err:
            log.info("job %d: the channel refused the notice (%s)", job.id, err)
    try:
        user = client.get_user(job.user_id) or await client.fetch_user(job.user_id)
        await user.send(text, allowed_mentions=NO_MENTIONS)
        return "dm"
    except discord.HTTPException as err:
        log.warning("job %d: could not tell user %d anywhere (%s)", job.id, job.user_id, err)
    return None

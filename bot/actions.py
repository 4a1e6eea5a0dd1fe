"""What a command, a button and a reaction have in common: re-roll a job, cancel or delete one.

Each action checks limits and permissions, writes to the store and wakes the runtime and the
progress watcher; it raises ``UserError`` with the sentence to show when it refuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord

from bot.checks import can_cancel, can_reroll
from bot.guild_limits import check_request, get_limits, lower_smooth
from bot.model_choices import check_params
from bot.text.messages import smooth_lowered_note
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import Job, JobKind, JobStatus
from engine.store.pictures import keep_picture

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


async def check_limits(
    bot: AnimaBot, params: RenderParams | None, *, user_id: int, guild_id: int | None, channel_id: int | None
) -> None:
    """``UserError`` with the limits check's sentence when this request is over a limit."""
    if guild_id is None:
        raise UserError("Renders only work in a server channel, not in direct messages.")
    limits = await get_limits(bot.store, guild_id, defaults=bot.config.limits)
    usage = await bot.store.usage(guild_id, user_id)
    reason = check_request(limits, params, usage, channel_id=channel_id, now=time.time())
    if reason is not None:
        log.info("user %d in guild %d refused: %s", user_id, guild_id, reason)
        raise UserError(reason)


async def queue_render(
    bot: AnimaBot,
    kind: JobKind,
    params: RenderParams,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None,
    parent_id: int | None = None,
    notes: list[str] | None = None,
) -> Job:
    """Validate, check limits, enqueue with a concrete seed, and wake the workers.

    Smoothing is lowered to what the guild's max fps allows; ``notes`` gets the sentence saying so.
    """
    params = params.validate()
    await check_params(bot, params, guild_id)  # the model and LoRAs: configured, and allowed here
    params = await fit_smoothing(bot, params, guild_id, notes)
    await check_limits(bot, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id)
    if params.image_key is not None and not await asyncio.to_thread(
        keep_picture, bot.config.data_dir, params.image_key
    ):
        raise UserError("The picture this video started from is no longer kept; start again with /animate image:.")
    job = await bot.store.enqueue(
        kind, params.with_seed(params.seed), user_id=user_id, guild_id=guild_id, origin_id=channel_id,
        parent_id=parent_id,
    )  # fmt: skip
    bot.jobs_changed()
    return job


async def fit_smoothing(
    bot: AnimaBot, params: RenderParams, guild_id: int | None, notes: list[str] | None
) -> RenderParams:
    """``params`` smoothed no more than the guild's max fps allows (``notes`` gets the explanation)."""
    if params.smooth == 1 or guild_id is None:
        return params
    limits = await get_limits(bot.store, guild_id, defaults=bot.config.limits)
    fitted = lower_smooth(limits, params)
    if fitted.smooth != params.smooth and notes is not None:
        notes.append(smooth_lowered_note(params.smooth, fitted.smooth, params.fps, limits.max_fps))
    return fitted


async def reroll(bot: AnimaBot, job: Job, *, user_id: int, guild_id: int | None, channel_id: int | None) -> Job:
    """Queue ``job``'s parameters again with a new random seed, as ``user_id``'s request."""
    if not can_reroll(job):
        raise UserError(f"Job {job.id} only added audio; re-roll the video it used (job {job.parent_id}) instead.")
    params = job.params.with_seed()
    while params.seed == job.params.seed:  # a new seed, even against 1-in-4-billion odds
        params = job.params.with_seed()
    new = await queue_render(
        bot, JobKind.REROLL, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id, parent_id=job.id
    )
    log.info("job %d is a re-roll of job %d by user %d", new.id, job.id, user_id)
    return new


async def cancel_or_delete(bot: AnimaBot, job: Job, *, user_id: int, permissions: discord.Permissions) -> str:
    """Cancel ``job`` if it is still queued or running, else delete its posted video.

    Returns what happened, as a sentence; ``UserError`` when ``user_id`` may not do it.
    """
    if not can_cancel(job, user_id, permissions):
        raise UserError(
            f"Only the person who asked for job {job.id} or a member with Manage Messages can cancel or delete it."
        )
    if not job.status.finished:
        job = await bot.store.request_cancel(job.id)
        bot.jobs_changed()
        log.info("job %d: cancel by user %d", job.id, user_id)
        if job.status is JobStatus.CANCELLED:
            return f"Job {job.id} is cancelled."
        if job.status.finished:  # it ended just now: nothing to cancel, and its post is not deleted
            return f"Job {job.id} has already finished ({job.status.value})."
        return f"Cancelling job {job.id}…"
    if job.result_post_id is not None and job.origin_id is not None:
        message = bot.get_partial_messageable(job.origin_id, guild_id=job.guild_id).get_partial_message(
            job.result_post_id
        )
        try:
            await message.delete()
        except discord.NotFound:
            pass
        log.info("job %d: result message %d deleted by user %d", job.id, job.result_post_id, user_id)
        return f"Deleted the post of job {job.id}."
    return f"Job {job.id} has already finished ({job.status.value})."


async def job_on_server(bot: AnimaBot, job_id: int, guild_id: int | None) -> Job:
    """Job ``job_id`` if it belongs to this guild; ``UserError`` otherwise."""
    job = await bot.store.get(job_id)
    if job is None or job.guild_id != guild_id:
        raise UserError(f"There is no job {job_id} on this server; /queue shows the current ones.")
    return job


async def latest_active(bot: AnimaBot, user_id: int, guild_id: int | None) -> Job | None:
    """The user's most recent queued or running job in this guild."""
    mine = [job for job in await bot.store.active_jobs(guild_id) if job.user_id == user_id]
    return mine[-1] if mine else None  # active_jobs is oldest first

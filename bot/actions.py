"""What a command, a button, a reaction and a form have in common: queue a render, re-roll a job,
cancel or delete one.

:class:`JobActions` does the acts that write: it checks limits and permissions, writes to the store
and wakes the runtime and the progress watcher. The bot builds it once with what it uses; the plain
functions below only read the store. Each raises ``UserError`` with the sentence to show when it
refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import discord

from bot.checks import can_cancel, can_reroll
from bot.guild_limits import check_request, get_limits, lower_smooth
from bot.model_choices import check_params
from bot.safety import request_safety
from bot.text.messages import smooth_lowered_note
from engine.config import Config, LimitsConfig
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import Job, JobKind, JobStatus, Usage
from engine.store.store import JobStore

log = logging.getLogger(__name__)


class JobActions:
    """Queue, re-roll, cancel or delete jobs for members.

    ``client`` deletes a posted video, ``store`` and ``config`` (limits, catalog, data folder) are
    what the checks read and the jobs go to, and ``wake`` is called whenever jobs changed (the bot
    wakes its runtime and its progress watcher).
    """

    def __init__(self, client: discord.Client, store: JobStore, config: Config, *, wake: Callable[[], None]) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.wake = wake

    async def queue_render(
        self,
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
        await check_params(self.store, self.config, params, guild_id)  # the model and LoRAs: configured, allowed here
        params = await self._fit_smoothing(params, guild_id, notes)
        within_limits = await limits_check(
            self.store, self.config.limits, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )
        within_limits(await self.store.usage(guild_id, user_id))  # answered before the picture is renewed
        safety = await request_safety(
            self.client, self.store, self.config, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )  # refused here when a prompt uses a banned word; else the content policy the worker applies
        # A picture is this guild's (the store's row, not a file on this host); only its row is renewed.
        if params.image_key is not None and not await self.store.keep_picture(params.image_key, guild_id):
            raise UserError("The picture this video started from is no longer kept; start again with /animate image:.")
        # Checked again on the usage the insert's own transaction reads: simultaneous requests take turns.
        job = await self.store.enqueue(
            kind, params.with_seed(params.seed), user_id=user_id, guild_id=guild_id, origin_id=channel_id,
            parent_id=parent_id, check=within_limits, safety=safety,
        )  # fmt: skip
        self.wake()
        return job

    async def _fit_smoothing(self, params: RenderParams, guild_id: int | None, notes: list[str] | None) -> RenderParams:
        """``params`` smoothed no more than the guild's max fps allows (``notes`` gets the explanation)."""
        if params.smooth == 1 or guild_id is None:
            return params
        limits = await get_limits(self.store, guild_id, defaults=self.config.limits)
        fitted = lower_smooth(limits, params)
        if fitted.smooth != params.smooth and notes is not None:
            notes.append(smooth_lowered_note(params.smooth, fitted.smooth, params.fps, limits.max_fps))
        return fitted

    async def reroll(self, job: Job, *, user_id: int, guild_id: int | None, channel_id: int | None) -> Job:
        """Queue ``job``'s parameters again with a new random seed, as ``user_id``'s request."""
        if not can_reroll(job):
            raise UserError(f"Job {job.id} only added audio; re-roll the video it used (job {job.parent_id}) instead.")
        params = job.params.with_seed()
        while params.seed == job.params.seed:  # a new seed, even against 1-in-4-billion odds
            params = job.params.with_seed()
        new = await self.queue_render(
            JobKind.REROLL, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id, parent_id=job.id
        )
        log.info("job %d is a re-roll of job %d by user %d", new.id, job.id, user_id)
        return new

    async def cancel_or_delete(self, job: Job, *, user_id: int, permissions: discord.Permissions) -> str:
        """Cancel ``job`` if it is still queued or running, else delete its posted video.

        Returns what happened, as a sentence; ``UserError`` when ``user_id`` may not do it.
        """
        if not can_cancel(job, user_id, permissions):
            raise UserError(
                f"Only the person who asked for job {job.id} or a member with Manage Messages can cancel or delete it."
            )
        if not job.status.finished:
            job = await self.store.request_cancel(job.id)
            self.wake()
            log.info("job %d: cancel by user %d", job.id, user_id)
            if job.status is JobStatus.CANCELLED:
                return f"Job {job.id} is cancelled."
            if job.status.finished:  # it ended just now: nothing to cancel, and its post is not deleted
                return f"Job {job.id} has already finished ({job.status.value})."
            return f"Cancelling job {job.id}…"
        if job.result_post_id is not None and job.origin_id is not None:
            channel = self.client.get_partial_messageable(job.origin_id, guild_id=job.guild_id)
            try:
                await channel.get_partial_message(job.result_post_id).delete()
            except discord.NotFound:
                pass
            log.info("job %d: result message %d deleted by user %d", job.id, job.result_post_id, user_id)
            return f"Deleted the post of job {job.id}."
        return f"Job {job.id} has already finished ({job.status.value})."

    async def queue_mux(
        self, target: Job, audio_path: str, *, user_id: int, guild_id: int | None, channel_id: int | None,
        safety: str = "off",
    ) -> Job:  # fmt: skip
        """Queue putting the audio at ``audio_path`` (a blob reference) on ``target``'s video, as
        ``user_id``'s request: it counts against their quota, queue and cooldown like a render, checked
        on the usage the insert's own transaction reads. ``safety``: the mode of the channel where it
        was asked for (``bot.safety.mux_safety``), which the worker applies to the video."""
        within_limits = await limits_check(
            self.store, self.config.limits, None, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )
        job = await self.store.enqueue(
            JobKind.MUX, None, user_id=user_id, guild_id=guild_id, origin_id=channel_id, parent_id=target.id,
            audio_path=audio_path, check=within_limits, safety=safety,
        )  # fmt: skip
        self.wake()
        return job


async def limits_check(
    store: JobStore,
    defaults: LimitsConfig,
    params: RenderParams | None,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None,
) -> Callable[[Usage], None]:
    """This request's check against its guild's limits (``defaults``: the host's, under the guild's
    own), for the member's usage: it raises ``UserError`` with the sentence when the request is over
    a limit. ``store.enqueue(check=...)`` runs it on the usage read in the insert's transaction;
    ``params=None`` is a request that renders nothing."""
    if guild_id is None:
        raise UserError("Renders only work in a server channel, not in direct messages.")
    limits = await get_limits(store, guild_id, defaults=defaults)

    def within_limits(usage: Usage) -> None:
        reason = check_request(limits, params, usage, channel_id=channel_id, now=time.time())
        if reason is not None:
            log.info("user %d in guild %d refused: %s", user_id, guild_id, reason)
            raise UserError(reason)

    return within_limits


async def check_limits(
    store: JobStore,
    defaults: LimitsConfig,
    params: RenderParams | None,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None,
) -> None:
    """:func:`limits_check` on the member's usage now: an early answer, before work worth sparing
    (an upload). It binds nothing; the insert checks again (``JobStore.enqueue``'s ``check``)."""
    within_limits = await limits_check(
        store, defaults, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id
    )
    within_limits(await store.usage(guild_id, user_id))


async def job_on_server(store: JobStore, job_id: int, guild_id: int | None) -> Job:
    """Job ``job_id`` if it belongs to this guild; ``UserError`` otherwise."""
    job = await store.get(job_id)
    if job is None or job.guild_id != guild_id:
        raise UserError(f"There is no job {job_id} on this server; /queue shows the current ones.")
    return job


async def latest_active(store: JobStore, user_id: int, guild_id: int | None) -> Job | None:
    """The user's most recent queued or running job in this guild."""
    mine = [job for job in await store.active_jobs(guild_id) if job.user_id == user_id]
    return mine[-1] if mine else None  # active_jobs is oldest first

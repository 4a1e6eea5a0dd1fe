"""``/deliver job:N``: post a finished video that Discord refused before, once that is fixed.

A post refused for good (missing permissions, the channel deleted) holds the job back in the
store (``bot.delivery.results.ResultPoster.hold_and_tell``); the video stays on the host for the
retention period. ``/deliver`` posts it in the channel it is used in, records that post (the job is
delivered) and releases the hold. A video that is posted already is not posted again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.actions import job_on_server
from bot.delivery.results import decorate, is_permanent, result_file
from bot.replies import reply
from bot.text.messages import not_posted_reason
from engine.errors import UserError
from engine.store.jobs import JobStatus

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


class Deliver(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="deliver", description="Post a finished video that could not be posted before.")
    @app_commands.guild_only()
    @checks.bot_may_post()
    @app_commands.describe(job="The job id (/queue lists your videos that are kept but not posted)")
    async def deliver(self, interaction: discord.Interaction, job: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = await job_on_server(self.bot.store, job, interaction.guild_id)
        interaction.extras["job_id"] = target.id
        if not checks.can_cancel(target, interaction.user.id, interaction.permissions):
            raise UserError(f"Only the person who asked for job {job} or a member with Manage Messages can post it.")
        if target.status is not JobStatus.DONE:
            raise UserError(f"Job {job} has no video to post ({target.status.value}).")
        held = await self.bot.store.held_jobs(user_id=target.user_id, guild_id=target.guild_id)
        if target.result_post_id is not None and target.id not in held:
            raise UserError(f"Job {job}'s video is posted already; /animate renders a new one.")
        if await result_file(self.bot.store, target) is None:
            days = self.bot.config.engine.retention_days
            raise UserError(f"Job {job}'s video is no longer kept (videos are kept {days:g} days); render it again.")
        channel = self.bot.get_partial_messageable(interaction.channel_id, guild_id=interaction.guild_id)
        try:
            # The interaction's id as the nonce: a retried /deliver posts once.
            message = await self.bot.poster.post_result(target, channel, once=str(interaction.id))
        except discord.HTTPException as err:
            if not is_permanent(err):
                raise
            missing = self.bot.poster.missing_in(interaction.channel_id, interaction.guild_id)
            raise UserError(not_posted_reason(err.code, interaction.channel_id, missing)) from None
        await self.bot.poster.record_result(target.id, message.id)
        await self.bot.store.release(target.id)
        log.info("job %d: posted by /deliver as message %d in channel %d", target.id, message.id, channel.id)
        await decorate(target, message)
        await reply(interaction, f"Posted job {target.id}'s video in <#{interaction.channel_id}>.")


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Deliver(bot))

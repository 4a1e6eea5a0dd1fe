"""``/queue`` (what runs, what waits, where you are) and ``/cancel [job]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.actions import job_on_server, latest_active
from bot.replies import reply
from bot.text.messages import held_lines, queue_text
from engine.errors import UserError
from engine.store.jobs import JobStatus

if TYPE_CHECKING:
    from bot.client import AnimaBot


class Queue(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="What is rendering, what is waiting, and your place.")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.store.active_jobs(interaction.guild_id)
        positions = await self.bot.store.queue_positions(job.id for job in jobs if job.status is JobStatus.QUEUED)
        text = queue_text(jobs, positions, interaction.user.id)
        held = await self.bot.store.held_jobs(user_id=interaction.user.id, guild_id=interaction.guild_id)
        await reply(interaction, "\n".join([text, *held_lines(held)]))

    @app_commands.command(name="cancel", description="Cancel one of your jobs (your latest when left out).")
    @app_commands.guild_only()
    @app_commands.describe(job="The job id (moderators with Manage Messages may cancel anyone's)")
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1] | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if job is None:
            target = await latest_active(self.bot.store, interaction.user.id, interaction.guild_id)
            if target is None:
                raise UserError("You have no queued or running job here.")
        else:
            target = await job_on_server(self.bot.store, job, interaction.guild_id)
            if target.status.finished:
                raise UserError(f"Job {job} has already finished ({target.status.value}).")
        interaction.extras["job_id"] = target.id
        text = await self.bot.actions.cancel_or_delete(
            target, user_id=interaction.user.id, permissions=interaction.permissions
        )
        await reply(interaction, text)


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Queue(bot))

"""``/status``: how the queue and the workers are doing, for every member; this server's use today
for members with Manage Server (``bot.checks.can_manage_limits``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import can_manage_limits
from bot.replies import reply
from bot.text.status import status_text

if TYPE_CHECKING:
    from bot.client import AnimaBot

WINDOW_SECONDS = 3600.0  # the median wait and the workers' speed are over the last hour


class Status(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="status", description="How long the queue is, how long jobs wait, and the workers.")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.store
        counts = await store.queue_counts()
        median_wait = await store.median_wait(WINDOW_SECONDS)
        workers = await store.workers(seen_within=WINDOW_SECONDS, speed_window=WINDOW_SECONDS)
        today = None
        if can_manage_limits(interaction.permissions):
            today = await store.guild_today(interaction.guild_id)
        await reply(interaction, status_text(counts, median_wait, workers, store.lease_seconds, today))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Status(bot))

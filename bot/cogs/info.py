"""The Info button on a result: the video's recipe, privately, with the ``animabot render`` line that
renders it again (``bot.job_buttons`` dispatches its click here as ``job_info``; the text is
``bot.text.info``'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.actions import job_on_server
from bot.replies import reply
from bot.text.info import info_text, job_recipe

if TYPE_CHECKING:
    from bot.client import AnimaBot


class Info(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_job_info(self, interaction: discord.Interaction, job_id: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await job_on_server(self.bot.store, job_id, interaction.guild_id)
        await reply(interaction, info_text(await job_recipe(self.bot.config, self.bot.store, job)))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Info(bot))

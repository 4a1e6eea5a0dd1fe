"""``/models``: the models and LoRAs this server may pick in ``/animate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import model_choices
from bot.replies import reply

if TYPE_CHECKING:
    from bot.client import AnimaBot


class Models(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="models", description="The models and LoRAs you can use in /animate here.")
    @app_commands.guild_only()
    async def models(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        models, loras = await model_choices.guild_choices(self.bot.store, self.bot.config, interaction.guild_id)
        await reply(interaction, model_choices.models_text(self.bot.config.catalog, models, loras))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Models(bot))

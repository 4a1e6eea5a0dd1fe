"""The **Animate** message context menu: Apps → Animate on a message with a picture.

It opens a modal asking for the prompt (and optionally the negative prompt); submitting it queues
the same render as ``/animate image:`` with the message's picture (its first image attachment, else
an embed's image). The modal is the first answer, so it is sent at once, well within Discord's 3 s;
the picture is downloaded after the member submits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, pictures
from bot.answers import answer_error, answer_queued
from engine.store.jobs import JobKind

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


class AnimateModal(discord.ui.Modal, title="Animate this picture"):
    """The prompt for a picture; submitting it downloads the picture and queues the render."""

    prompt = discord.ui.TextInput(
        label="Prompt",
        placeholder="What the video shows, e.g. the portrait smiles and blinks",
        max_length=1000,
        custom_id="animabot:animate:prompt",
    )
    negative = discord.ui.TextInput(
        label="Negative prompt (optional)",
        placeholder="What it should not show",
        required=False,
        max_length=1000,
        custom_id="animabot:animate:negative",
    )

    def __init__(self, bot: AnimaBot, source: pictures.PictureSource) -> None:
        super().__init__(timeout=900)
        self.bot = bot
        self.source = source

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        user_id, guild_id, channel_id = interaction.user.id, interaction.guild_id, interaction.channel_id
        bot = self.bot
        params = bot.config.defaults(self.prompt.value, negative_prompt=self.negative.value or None)
        params, picture = await pictures.picture_params(
            bot.store, bot.config, bot.session, params, self.source,
            size_given=False, user_id=user_id, guild_id=guild_id, channel_id=channel_id,
        )  # fmt: skip
        job = await bot.actions.queue_render(
            JobKind.ANIMATE, params, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )
        log.info("job %d queued from the Animate menu by user %d", job.id, user_id)
        await answer_queued(interaction, bot.store, job, [picture.note])

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await answer_error(interaction, error, "the Animate form")


class AnimatePicture(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Animate", callback=self.animate_message)
        self.menu.guild_only = True
        self.menu.add_check(checks.bot_can_post)
        bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def animate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        source = pictures.in_message(message)  # UserError (answered by the tree) when it has none
        pictures.check_source(source)
        await interaction.response.send_modal(AnimateModal(self.bot, source))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(AnimatePicture(bot))

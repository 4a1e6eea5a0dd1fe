"""Remix from anywhere: the message context-menu **Remix**, and every Remix form's submission.

The context menu works on any message with an animabot video, even one re-uploaded by someone
else: the attachment is downloaded (capped) and the recipe read from the file, and the Remix form
opens with its prompt and seed. Submissions of the form (from this menu or from a result's Remix
button) arrive here through ``on_interaction``, matched by the form's ``custom_id``, so they need
nothing kept in memory and work after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import remix
from bot.replies import reply
from bot.text.messages import apology
from engine.errors import UserError
from engine.request.recipe import is_recipe, recipe_params

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


class Remix(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Remix", callback=self.remix_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def remix_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Read the recipe inside the message's video and open the Remix form with it."""
        try:
            attachment = remix.video_attachment(message)
            recipe = await self._read_recipe(attachment)
            if not is_recipe(recipe):
                raise UserError("That video carries no animabot recipe; Remix works on videos animabot rendered.")
            params = recipe_params(recipe)
            parent = await self._parent(recipe, params.seed, interaction.guild_id)
            await interaction.response.send_modal(remix.RemixModal(params, parent, "Remix this video"))
        except UserError as err:
            await reply(interaction, str(err))

    async def _read_recipe(self, attachment: discord.Attachment) -> dict | None:
        from engine.video.read import read_recipe  # ffmpeg side; imported only when needed

        data = await remix.download(self.bot, attachment)
        folder = self.bot.config.data_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            path = Path(tmp) / f"remix{Path(attachment.filename).suffix.lower()}"
            await asyncio.to_thread(path.write_bytes, data)
            return await asyncio.to_thread(read_recipe, path)

    async def _parent(self, recipe: dict, seed: int | None, guild_id: int | None) -> int | None:
        """The recipe's job when it is this server's (same seed); ``None`` for a video from elsewhere."""
        job_id = recipe.get("job")
        if not isinstance(job_id, int):
            return None
        job = await self.bot.store.get(job_id)
        return job.id if job is not None and job.guild_id == guild_id and job.seed == seed else None

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        match = remix.FORM_ID.fullmatch((interaction.data or {}).get("custom_id", ""))
        if match is None:
            return
        try:
            await remix.submit(interaction, int(match["parent"]))
        except UserError as err:
            await reply(interaction, str(err))
        except Exception:
            reference = interaction.extras.get("job_id") or interaction.id
            log.exception("remix form %s failed", reference)
            await reply(interaction, apology(reference))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Remix(bot))

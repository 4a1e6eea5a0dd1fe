"""Answering an interaction privately, and the one ``AllowedMentions`` used for every message."""

from __future__ import annotations

import logging

import discord

from bot.text import limits

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


async def reply(interaction: discord.Interaction, text: str) -> None:
    """Answer privately, whether or not the interaction was deferred; never pings; within Discord's limits."""
    text = limits.content(text)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("could not answer interaction %d (its token may have expired)", interaction.id, exc_info=True)

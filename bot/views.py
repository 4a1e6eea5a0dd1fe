"""Buttons that survive a restart: Re-roll on results, Cancel on progress messages.

Each is a ``DynamicItem`` whose ``custom_id`` carries the job id (``animabot:reroll:42``); the bot
registers the templates in ``setup_hook``, so a click on a message posted before a restart is
rebuilt from the id alone and the job is read back from the store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot import actions
from bot.messages import CANCEL_EMOJI, REROLL_EMOJI, apology, queued_reply
from bot.replies import reply
from engine.errors import UserError

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


class RerollButton(discord.ui.DynamicItem[discord.ui.Button], template=r"animabot:reroll:(?P<job>\d+)"):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Re-roll", emoji=REROLL_EMOJI, style=discord.ButtonStyle.secondary,
                custom_id=f"animabot:reroll:{job_id}",
            )
        )  # fmt: skip
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match) -> RerollButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: AnimaBot = interaction.client  # type: ignore[assignment]
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            actions.check_can_post(interaction)
            job = await _job(bot, self.job_id)
            new = await actions.reroll(
                bot, job, user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id
            )
            interaction.extras["job_id"] = new.id
            await reply(interaction, queued_reply(new, await bot.store.queue_position(new.id)))
        except UserError as err:
            await reply(interaction, str(err))
        except Exception:
            log.exception("re-roll button on job %d failed", self.job_id)
            await reply(interaction, apology(self.job_id))


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"animabot:cancel:(?P<job>\d+)"):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel", emoji=CANCEL_EMOJI, style=discord.ButtonStyle.danger,
                custom_id=f"animabot:cancel:{job_id}",
            )
        )  # fmt: skip
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match) -> CancelButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: AnimaBot = interaction.client  # type: ignore[assignment]
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            job = await _job(bot, self.job_id)
            text = await actions.cancel_or_delete(
                bot, job, user_id=interaction.user.id, permissions=interaction.permissions
            )
            await reply(interaction, text)
        except UserError as err:
            await reply(interaction, str(err))
        except Exception:
            log.exception("cancel button on job %d failed", self.job_id)
            await reply(interaction, apology(self.job_id))


async def _job(bot: AnimaBot, job_id: int):
    job = await bot.store.get(job_id)
    if job is None:
        raise UserError(f"Job {job_id} no longer exists.")
    return job


def result_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    return view


def progress_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view

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
from engine.queue.jobs import Job

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
        await press(interaction, self.job_id, "re-roll", self.reroll)

    async def reroll(self, interaction: discord.Interaction, bot: AnimaBot, job: Job) -> str:
        actions.check_can_post(interaction)
        new = await actions.reroll(
            bot, job, user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id
        )
        interaction.extras["job_id"] = new.id
        return queued_reply(new, (await bot.store.queue_positions([new.id]))[new.id])


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
        await press(interaction, self.job_id, "cancel", self.cancel)

    async def cancel(self, interaction: discord.Interaction, bot: AnimaBot, job: Job) -> str:
        user_id, permissions = interaction.user.id, interaction.permissions
        return await actions.cancel_or_delete(bot, job, user_id=user_id, permissions=permissions)


async def press(interaction: discord.Interaction, job_id: int, name: str, action) -> None:
    """Defer, run ``action(interaction, bot, job)`` on the button's job, answer privately with its text."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    bot: AnimaBot = interaction.client  # type: ignore[assignment]
    try:
        job = await actions.job_on_server(bot, job_id, interaction.guild_id)
        text = await action(interaction, bot, job)
    except UserError as err:
        text = str(err)
    except Exception:
        log.exception("%s button on job %d failed", name, job_id)
        text = apology(job_id)
    await reply(interaction, text)


def result_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    return view


def progress_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view

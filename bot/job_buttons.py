"""Buttons that survive a restart: Re-roll, Info and Remix on results, Cancel on progress messages.

Both are one ``DynamicItem``, :class:`JobButton`, whose ``custom_id`` carries the action and the job
id (``animabot:reroll:42``, ``animabot:cancel:42``); the bot registers its template in
``setup_hook``, so a click on a message posted before a restart is rebuilt from the id alone and
the job is read back from the store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot import actions, checks
from bot.delivery import notify
from bot.replies import reply
from bot.text.messages import CANCEL_EMOJI, INFO_EMOJI, REMIX_EMOJI, REROLL_EMOJI, apology, queued_reply
from engine.errors import UserError
from engine.store.jobs import Job

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

BUTTON_LOOKS = {  # action → (label, emoji, style) of its button
    "reroll": ("Re-roll", REROLL_EMOJI, discord.ButtonStyle.secondary),
    "cancel": ("Cancel", CANCEL_EMOJI, discord.ButtonStyle.danger),
    "info": ("Info", INFO_EMOJI, discord.ButtonStyle.secondary),
    "remix": ("Remix", REMIX_EMOJI, discord.ButtonStyle.secondary),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"animabot:(?P<action>reroll|cancel|info|remix):(?P<id>\d+)"
):
    """Re-roll, Info, Remix (on a result) or Cancel (on a progress message) for one job: ``animabot:reroll:42``."""

    def __init__(self, action: str, job_id: int) -> None:
        label, emoji, style = BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=style, custom_id=f"animabot:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match) -> JobButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.action == "reroll":
            await press(interaction, self.job_id, "re-roll", reroll)
        elif self.action == "info":
            await press(interaction, self.job_id, "info", info)
        elif self.action == "remix":
            await open_remix(interaction, self.job_id)
        else:
            await press(interaction, self.job_id, "cancel", cancel)


async def reroll(interaction: discord.Interaction, bot: AnimaBot, job: Job) -> str:
    """Queue the job again with a new seed, as the clicking member's request in this channel."""
    if not checks.bot_can_post(interaction):
        raise UserError(checks.CANNOT_POST)
    new = await actions.reroll(
        bot, job, user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id
    )
    interaction.extras["job_id"] = new.id
    await notify.remember(bot, new.id, interaction)
    return queued_reply(new, (await bot.store.queue_positions([new.id]))[new.id])


async def cancel(interaction: discord.Interaction, bot: AnimaBot, job: Job) -> str:
    """Cancel the job, or delete its post once finished, if the clicking member may."""
    user_id, permissions = interaction.user.id, interaction.permissions
    return await actions.cancel_or_delete(bot, job, user_id=user_id, permissions=permissions)


async def info(interaction: discord.Interaction, bot: AnimaBot, job: Job) -> str:
    """The job's recipe, readable, with the ``animabot render`` line that renders it again."""
    from bot.text.info import info_text, job_recipe

    return info_text(await job_recipe(bot, job))


async def open_remix(interaction: discord.Interaction, job_id: int) -> None:
    """Open the Remix form for the job (a modal must be the first answer, so no defer here)."""
    from bot.remix import RemixModal

    bot: AnimaBot = interaction.client  # type: ignore[assignment]
    try:
        job = await actions.job_on_server(bot, job_id, interaction.guild_id)
        if job.params is None:
            raise UserError(f"Job {job.id} only added audio; remix the video it used (job {job.parent_id}).")
        await interaction.response.send_modal(RemixModal(job.params, job.id, f"Remix job {job.id}"))
    except UserError as err:
        await reply(interaction, str(err))


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
    view.add_item(JobButton("reroll", job_id))
    view.add_item(JobButton("info", job_id))
    view.add_item(JobButton("remix", job_id))
    return view


def progress_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("cancel", job_id))
    return view

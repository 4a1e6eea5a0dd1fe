"""Buttons that survive a restart: Re-roll, Info and Remix on results, Cancel on progress messages.

All four are one ``DynamicItem``, :class:`JobButton`, whose ``custom_id`` carries the action and the
job id (``animabot:reroll:42``, ``animabot:cancel:42``); the bot registers its template in
``setup_hook``, so a click on a message posted before a restart is rebuilt from the id alone and
the job is read back from the store.

This module is only what the buttons look like and where a click goes: the delivery posts them,
and the cog that owns each act handles its click. A click is dispatched as the bot event
``job_<action>`` (``on_job_reroll(interaction, job_id)``): Re-roll and Cancel are handled by
``bot.cogs.animate`` beside the 🔄/❌ reactions, Info by ``bot.cogs.info``, Remix by
``bot.cogs.remix`` beside its form. What a handler raises is answered by the bot's ``on_error``
(``bot.answers.answer_error``), with the button's job as the reference.
"""

from __future__ import annotations

import discord

from bot.text.messages import CANCEL_EMOJI, INFO_EMOJI, REMIX_EMOJI, REROLL_EMOJI

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
        interaction.extras["job_id"] = self.job_id  # the reference of an apology, until a new job replaces it
        interaction.client.dispatch(f"job_{self.action}", interaction, self.job_id)


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

"""The two answers every interaction may end with, written once: "queued", and what went wrong.

Slash commands, context menus, buttons and forms all queue jobs and all fail the same ways, so
they answer through these two functions:

- :func:`answer_queued`: the job's id and place in the queue, privately, and the interaction kept
  (``bot.delivery.notify.remember``) so that the member can be told later what became of the job;
- :func:`answer_error`: a ``UserError`` (or a refused check) is shown as it is, one sentence
  saying what to do; anything else is logged with the job id and the member gets an apology
  naming it. The command tree's ``on_error`` and the bot's ``on_error`` (buttons and forms, whose
  handlers are event listeners) call it, and so does the Animate form's ``on_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import discord

from bot import checks
from bot.delivery import notify
from bot.replies import reply
from bot.text.messages import apology, queued_reply
from engine.errors import UserError
from engine.store.jobs import Job, JobKind
from engine.store.store import JobStore

log = logging.getLogger(__name__)


async def answer_queued(interaction: discord.Interaction, store: JobStore, job: Job, notes: Iterable[str] = ()) -> None:
    """The private answer once ``job`` is queued: its id and queue position, then ``notes``."""
    interaction.extras["job_id"] = job.id
    # both at once: a member's answer waits for one store call, not two in a row (a burst's 50 wait for all)
    _, positions = await asyncio.gather(notify.remember(store, job.id, interaction), store.queue_positions([job.id]))
    position = positions[job.id]
    lines = [queued_reply(job, position), *notes]
    if job.kind is not JobKind.MUX and checks.missing_reactions(interaction.app_permissions):
        lines.append(checks.NO_REACTIONS)  # a render's result carries 🔄/❌: say they will be missing
    await reply(interaction, " ".join(line for line in lines if line))


async def answer_error(interaction: discord.Interaction, error: BaseException, what: str) -> None:
    """Answer ``error`` raised while handling ``interaction`` (``what``: ``"/animate"``, ``"the Remix form"``).

    The sentence of a ``UserError`` or a :class:`bot.checks.Refused` check is the answer; anything
    else is logged with the job id (``interaction.extras["job_id"]``, else the interaction's) and
    the member reads an apology that names the same reference.
    """
    error = getattr(error, "original", error)  # app_commands wraps what a command raised
    if isinstance(error, (UserError, checks.Refused)):
        await reply(interaction, str(error))
        return
    reference = interaction.extras.get("job_id") or interaction.id
    log.error("%s failed (job %s)", what, reference, exc_info=error)
    await reply(interaction, apology(reference))

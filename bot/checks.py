"""Who may do what: pure predicates on a job and permissions, and the slash commands' checks.

The predicates are plain functions, so reactions (which are not interactions) call them directly.
Commands and context menus use the ``app_commands`` checks at the bottom: a check that fails raises
:class:`Refused` with the sentence the member reads, and the command tree's ``on_error`` answers it
(``bot.answers.answer_error``, the one error responder, which buttons and forms use too).
"""

from __future__ import annotations

import discord
from discord import app_commands

from engine.store.jobs import Job

NO_REACTIONS = "I can't add reactions here (Add Reactions permission), so use the buttons on the result."
NOT_MANAGER = "Only members with the Manage Server permission can view or change the limits."


# -- pure predicates ------------------------------------------------------------------------------
def can_cancel(job: Job, user_id: int, permissions: discord.Permissions) -> bool:
    """The requester, or anyone who may manage messages in the channel, may cancel or delete."""
    return job.user_id == user_id or permissions.manage_messages or permissions.administrator


def can_mux(job: Job, user_id: int, permissions: discord.Permissions) -> bool:
    """A member puts audio on their own videos; one who may manage messages, on anyone's."""
    return can_cancel(job, user_id, permissions)


def can_manage_limits(permissions: discord.Permissions) -> bool:
    """``/limits`` is for members with Manage Server (administrators have every permission)."""
    return permissions.manage_guild or permissions.administrator


def can_reroll(job: Job) -> bool:
    """Any render job can be re-rolled; a mux job has no render parameters."""
    return job.params is not None


def can_post_videos(permissions: discord.Permissions, *, in_thread: bool = False) -> bool:
    """Whether the bot may post progress and videos where a command was used."""
    return not missing_for_posting(permissions, in_thread=in_thread)


def missing_for_posting(permissions: discord.Permissions, *, in_thread: bool = False) -> list[str]:
    """The permissions (as Discord's settings name them) the bot lacks to post videos there."""
    send = ("send_messages_in_threads", "Send Messages in Threads") if in_thread else ("send_messages", "Send Messages")
    needed = [("view_channel", "View Channel"), send, ("attach_files", "Attach Files")]
    return [name for flag, name in needed if not getattr(permissions, flag)]


def missing_reactions(permissions: discord.Permissions) -> bool:
    """Without Add Reactions the results carry no 🔄/❌ (the buttons still work)."""
    return not permissions.add_reactions


def cannot_post_text(missing: list[str], channel_id: int | None) -> str:
    """``I can't attach files in #renders — ask a server admin to give me the Attach Files permission there.``"""
    where = f"<#{channel_id}>" if channel_id else "this channel"
    if missing == ["Attach Files"]:
        doing = "attach files"
    elif "View Channel" in missing:
        doing = "see"
    else:
        doing = "post videos"
    names = " and ".join(missing) if len(missing) < 3 else ", ".join(missing[:-1]) + " and " + missing[-1]
    plural = "permission" if len(missing) == 1 else "permissions"
    return f"I can't {doing} in {where} — ask a server admin to give me the {names} {plural} there."


# -- app_commands checks --------------------------------------------------------------------------
class Refused(app_commands.CheckFailure):
    """A check failed; the message is the one sentence the member reads."""


def bot_can_post(interaction: discord.Interaction) -> bool:
    """The check of everything that queues a job: ``True``, or :class:`Refused` naming what the bot
    lacks to post progress and videos in the interaction's channel (or thread).

    Commands and context menus carry it (:func:`bot_may_post`, ``ContextMenu.add_check``); the
    Re-roll button calls it before queueing.
    """
    in_thread = isinstance(interaction.channel, discord.Thread)
    missing = missing_for_posting(interaction.app_permissions, in_thread=in_thread)
    if missing:
        raise Refused(cannot_post_text(missing, getattr(interaction, "channel_id", None)))
    return True


def bot_may_post():
    """The command queues a job whose progress and video the bot must be able to post here."""
    return app_commands.check(bot_can_post)


def manages_server():
    """For members with Manage Server, whatever the server's command permissions show them."""

    def predicate(interaction: discord.Interaction) -> bool:
        if not can_manage_limits(interaction.permissions):
            raise Refused(NOT_MANAGER)
        return True

    return app_commands.check(predicate)

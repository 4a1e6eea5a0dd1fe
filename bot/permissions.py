"""Who may do what: pure checks on a job and a member's permissions in the channel."""

from __future__ import annotations

import discord

from engine.queue.jobs import Job


def can_cancel(job: Job, user_id: int, permissions: discord.Permissions) -> bool:
    """The requester, or anyone who may manage messages in the channel, may cancel or delete."""
    return job.user_id == user_id or permissions.manage_messages or permissions.administrator


def can_manage_limits(permissions: discord.Permissions) -> bool:
    """``/limits`` is for members with Manage Server (administrators have every permission)."""
    return permissions.manage_guild or permissions.administrator


def can_reroll(job: Job) -> bool:
    """Any render job can be re-rolled; a mux job has no render parameters."""
    return job.params is not None


def can_post_videos(permissions: discord.Permissions, *, in_thread: bool = False) -> bool:
    """Whether the bot may post progress and videos where a command was used."""
    send = permissions.send_messages_in_threads if in_thread else permissions.send_messages
    return permissions.view_channel and send and permissions.attach_files

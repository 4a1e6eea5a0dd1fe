"""The fake's world: who exists (users, guilds, roles, channels, members) and what was said
(messages and their attachments), with lookups that answer like Discord when something is missing.

The JSON Discord would send for each record comes from the :class:`~.payloads.Payloads` mixin; what
Discord refuses in a message body is in ``message_body.py``.
"""

from __future__ import annotations

import copy
import mimetypes
import time
from typing import Any

from .errors import unknown
from .message_body import check_message, resolve_attachments
from .models import (
    ALL_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    LOADING,
    MANAGE_MESSAGES,
    AttachmentRecord,
    ChannelRecord,
    GuildRecord,
    InteractionRecord,
    MemberRecord,
    MessageRecord,
    RequestRecord,
    RoleRecord,
    SnowflakeFactory,
    SyncRecord,
    UserRecord,
    iso_now,
)
from .payloads import Payloads

NONCE_SECONDS = 300.0  # how long Discord remembers an enforced nonce ("the past few minutes")


class FakeState(Payloads):
    def __init__(self, *, bot_name: str = "animabot") -> None:
        self.next_id = SnowflakeFactory()
        self.users: dict[int, UserRecord] = {}
        self.guilds: dict[int, GuildRecord] = {}
        self.channels: dict[int, ChannelRecord] = {}
        self.messages: dict[int, MessageRecord] = {}
        self.channel_messages: dict[int, list[MessageRecord]] = {}
        self.attachments: dict[int, AttachmentRecord] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.syncs: list[SyncRecord] = []
        self.requests: list[RequestRecord] = []
        self.http_base = ""  # "http://127.0.0.1:PORT", set when the server starts
        self.bot = self.add_user(bot_name, bot=True)
        self.owner = self.add_user("owner")

    # -- world building -------------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> UserRecord:
        user = UserRecord(id=user_id or self.next_id(), name=name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        *,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        shard: tuple[int, int] | None = None,
    ) -> GuildRecord:
        guild = GuildRecord(id=self.next_id(shard), name=name, owner_id=self.owner.id)
        guild.roles[guild.id] = RoleRecord(guild.id, guild.id, "@everyone", everyone_permissions)
        self.guilds[guild.id] = guild
        bot_role = self.add_role(guild.id, self.bot.name, everyone_permissions | MANAGE_MESSAGES)
        self.add_member(guild.id, self.bot.id, role_ids=[bot_role.id])
        self.add_member(guild.id, self.owner.id)
        return guild

    def add_role(self, guild_id: int, name: str, permissions: int) -> RoleRecord:
        guild = self.guild(guild_id)
        role = RoleRecord(self.next_id(), guild_id, name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role

    def add_channel(
        self, guild_id: int | None, name: str, *, type: int = 0, nsfw: bool = False, parent_id: int | None = None
    ) -> ChannelRecord:
        channel = ChannelRecord(
            id=self.next_id(), name=name, type=type, guild_id=guild_id, nsfw=nsfw, parent_id=parent_id
        )
        if guild_id is not None:
            guild = self.guild(guild_id)
            channel.position = len(guild.channels)
            guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        return channel

    def add_member(self, guild_id: int, user_id: int, *, role_ids: list[int] | None = None) -> MemberRecord:
        member = MemberRecord(guild_id=guild_id, user_id=user_id, role_ids=list(role_ids or []))
        self.guild(guild_id).members[user_id] = member
        return member

    def dm_channel(self, user_id: int) -> ChannelRecord:
        for channel in self.channels.values():
            if channel.type == 1 and channel.recipient_ids == [user_id]:
                return channel
        channel = self.add_channel(None, "", type=1)
        channel.recipient_ids = [user_id]
        return channel

    # -- lookups that answer like Discord when missing ---------------------------------------

    def guild(self, guild_id: int) -> GuildRecord:
        try:
            return self.guilds[int(guild_id)]
        except (KeyError, ValueError):
            raise unknown("Guild", 10004) from None

    def channel(self, channel_id: int | str) -> ChannelRecord:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise unknown("Channel", 10003) from None

    def user(self, user_id: int | str) -> UserRecord:
        try:
            return self.users[int(user_id)]
        except (KeyError, ValueError):
            raise unknown("User", 10013) from None

    def message(self, channel_id: int | str | None, message_id: int | str) -> MessageRecord:
        try:
            message = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise unknown("Message", 10008) from None
        if message.deleted or (channel_id is not None and message.channel_id != int(channel_id)):
            raise unknown("Message", 10008)
        return message

    def permissions(self, guild_id: int | None, user_id: int, channel_id: int | None = None) -> int:
        """Guild permissions, less what a member overwrite of ``channel_id`` denies (not to admins)."""
        if guild_id is None:
            return DEFAULT_EVERYONE_PERMISSIONS
        value = self.guild(guild_id).permissions_of(user_id)
        channel = self.channels.get(int(channel_id)) if channel_id is not None else None
        if channel is not None and value != ALL_PERMISSIONS:
            value &= ~channel.denied.get(user_id, 0)
        return value

    def delete_channel(self, channel_id: int) -> ChannelRecord:
        """The channel is gone: every route naming it answers 404 Unknown Channel (10003) from now on."""
        channel = self.channel(channel_id)
        del self.channels[channel.id]
        if channel.guild_id is not None:
            self.guild(channel.guild_id).channels.pop(channel.id, None)
        return channel

    def nonce_message(self, channel_id: int, author_id: int, nonce: str) -> MessageRecord | None:
        """The message ``author_id`` created in the channel with ``nonce`` in the last few minutes."""
        now = time.monotonic()
        for message in reversed(self.channel_messages[channel_id]):
            if now - message.created_at > NONCE_SECONDS:
                return None
            if message.author_id == author_id and message.nonce == nonce:
                return message
        return None

    # -- messages ----------------------------------------------------------------------------

    def new_attachment(
        self, filename: str, data: bytes, content_type: str | None = None, description: str | None = None
    ) -> AttachmentRecord:
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        attachment = AttachmentRecord(self.next_id(), filename, content_type, bytes(data), description)
        self.attachments[attachment.id] = attachment
        return attachment

    def create_message(
        self,
        channel_id: int,
        author_id: int,
        body: dict[str, Any],
        files: list[AttachmentRecord],
        *,
        via: str,
        type: int = 0,
        webhook_id: int | None = None,
        interaction_id: int | None = None,
        extra_flags: int = 0,
    ) -> MessageRecord:
        channel = self.channel(channel_id)
        message = MessageRecord(
            id=self.next_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            type=type,
            webhook_id=webhook_id,
            interaction_id=interaction_id,
        )
        message.content = body.get("content") or ""
        message.embeds = list(body.get("embeds") or [])
        message.components = list(body.get("components") or [])
        message.allowed_mentions = body.get("allowed_mentions")
        message.flags = int(body.get("flags") or 0) | extra_flags
        message.message_reference = body.get("message_reference")
        message.nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        message.attachments = resolve_attachments(body.get("attachments"), files, kept=[])
        if not message.flags & LOADING:
            check_message(message)
        message.snapshot(via)
        self.messages[message.id] = message
        self.channel_messages[channel.id].append(message)
        return message

    def edit_message(
        self, message: MessageRecord, body: dict[str, Any], files: list[AttachmentRecord], *, via: str
    ) -> None:
        edited = copy.copy(message)  # validated before anything changes, like Discord
        if "content" in body:
            edited.content = body["content"] or ""
        if "embeds" in body:
            edited.embeds = list(body["embeds"] or [])
        if "components" in body:
            edited.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            edited.allowed_mentions = body["allowed_mentions"]
        if body.get("flags") is not None:
            edited.flags = int(body["flags"]) | (message.flags & EPHEMERAL)  # ephemeral can't change
        if "attachments" in body or files:
            edited.attachments = resolve_attachments(body.get("attachments"), files, kept=message.attachments)
        edited.flags &= ~LOADING
        check_message(edited)
        for name in ("content", "embeds", "components", "allowed_mentions", "flags", "attachments"):
            setattr(message, name, getattr(edited, name))
        message.edited_timestamp = iso_now()
        message.snapshot(via)

    def delete_message(self, message: MessageRecord) -> None:
        message.deleted = True
        message.deleted_at = time.monotonic()

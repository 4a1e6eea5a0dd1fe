"""The fake's world: who exists, what was said, and the JSON Discord would send for each of it."""

from __future__ import annotations

import copy
import mimetypes
import re
import time
from typing import Any
from urllib.parse import quote

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
    emoji_payload,
    iso_now,
)

_USER_MENTION = re.compile(r"<@!?(\d+)>")
MAX_CONTENT = 2000  # for bots; the OpenAPI description's 4000 is the Nitro users' limit
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000  # every embed's title, description, fields, footer and author together
NONCE_SECONDS = 300.0  # how long Discord remembers an enforced nonce ("the past few minutes")


class ApiError(Exception):
    """An error answer, shaped like Discord's: ``{"message": ..., "code": ...}``."""

    def __init__(self, status: int, message: str, code: int, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def unknown(kind: str, code: int) -> ApiError:
    return ApiError(404, f"Unknown {kind}", code)


class FakeState:
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

    def add_guild(self, name: str, *, everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS) -> GuildRecord:
        guild = GuildRecord(id=self.next_id(), name=name, owner_id=self.owner.id)
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

    def add_channel(self, guild_id: int | None, name: str, *, type: int = 0) -> ChannelRecord:
        channel = ChannelRecord(id=self.next_id(), name=name, type=type, guild_id=guild_id)
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

    # -- payloads ----------------------------------------------------------------------------

    def user_payload(self, user_id: int) -> dict[str, Any]:
        return self.user(user_id).payload()

    def member_payload(self, guild_id: int, user_id: int, *, permissions: bool = False) -> dict[str, Any]:
        member = self.guild(guild_id).members[user_id]
        payload = {
            "user": self.user_payload(user_id),
            "roles": [str(r) for r in member.role_ids],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if permissions:
            payload["permissions"] = str(self.permissions(guild_id, user_id))
        return payload

    def channel_payload(self, channel_id: int, *, permissions_for: int | None = None) -> dict[str, Any]:
        channel = self.channel(channel_id)
        payload: dict[str, Any] = {"id": str(channel.id), "type": channel.type, "flags": 0}
        if channel.type == 1:
            payload["recipients"] = [self.user_payload(u) for u in channel.recipient_ids]
            payload["last_message_id"] = None
        else:
            payload.update(
                guild_id=str(channel.guild_id),
                name=channel.name,
                position=channel.position,
                permission_overwrites=[
                    {"id": str(user_id), "type": 1, "allow": "0", "deny": str(bits)}
                    for user_id, bits in channel.denied.items()
                ],
                nsfw=False,
                parent_id=None,
                topic=None,
                last_message_id=None,
                rate_limit_per_user=0,
            )
        if permissions_for is not None:
            payload["permissions"] = str(self.permissions(channel.guild_id, permissions_for, channel.id))
        return payload

    def guild_payload(
        self, guild_id: int, *, unavailable: bool | None = None, all_members: bool = True
    ) -> dict[str, Any]:
        """GUILD_CREATE data. Without the GUILD_MEMBERS intent (``all_members=False``) Discord
        lists only the bot itself; ``member_count`` is always the true count."""
        guild = self.guild(guild_id)
        members = list(guild.members) if all_members else [self.bot.id]
        payload: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": guild.members[self.bot.id].joined_at,
            "large": False,
            "member_count": len(guild.members),  # == len(members) with the intent, or discord.py waits to chunk
            "members": [self.member_payload(guild.id, u) for u in members],
            "channels": [self.channel_payload(c) for c in guild.channels],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        if unavailable is not None:
            payload["unavailable"] = unavailable
        return payload

    def attachment_payload(self, attachment: AttachmentRecord) -> dict[str, Any]:
        url = f"{self.http_base}/attachments/{attachment.id}/{quote(attachment.filename)}"
        payload = {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": attachment.size,
            "url": url,
            "proxy_url": url,
            "content_type": attachment.content_type,
        }
        if attachment.description is not None:
            payload["description"] = attachment.description
        return payload

    def message_payload(self, message: MessageRecord) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(message.id),
            "type": message.type,
            "channel_id": str(message.channel_id),
            "author": self.user_payload(message.author_id),
            "content": message.content,
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                self.user_payload(int(u)) for u in _USER_MENTION.findall(message.content) if int(u) in self.users
            ],
            "mention_roles": [],
            "attachments": [self.attachment_payload(a) for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "pinned": False,
            "flags": message.flags,
            "reactions": [
                {
                    "emoji": emoji_payload(key),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": self.bot.id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for key, users in message.reactions.items()
                if users
            ],
        }
        if message.guild_id is not None:
            payload["guild_id"] = str(message.guild_id)
        if message.webhook_id is not None:
            payload["webhook_id"] = str(message.webhook_id)
            payload["application_id"] = str(self.bot.id)
        if message.message_reference is not None:
            payload["message_reference"] = message.message_reference
        if message.nonce is not None:
            payload["nonce"] = message.nonce
        interaction = self.interactions.get(message.interaction_id or 0)
        if interaction is not None:
            owners = {"0": str(interaction.guild_id)} if interaction.guild_id else {"1": str(interaction.user_id)}
            payload["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.user_payload(interaction.user_id),
                "authorizing_integration_owners": owners,
            }
            if interaction.type == 2:
                payload["interaction_metadata"]["name"] = interaction.name
                payload["interaction"] = {
                    "id": str(interaction.id),
                    "type": 2,
                    "name": interaction.name,
                    "user": self.user_payload(interaction.user_id),
                }
        return payload

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
        message.attachments = _resolve_attachments(body.get("attachments"), files, kept=[])
        if not message.flags & LOADING:
            _validate(message)
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
            edited.attachments = _resolve_attachments(body.get("attachments"), files, kept=message.attachments)
        edited.flags &= ~LOADING
        _validate(edited)
        for name in ("content", "embeds", "components", "allowed_mentions", "flags", "attachments"):
            setattr(message, name, getattr(edited, name))
        message.edited_timestamp = iso_now()
        message.snapshot(via)

    def delete_message(self, message: MessageRecord) -> None:
        message.deleted = True
        message.deleted_at = time.monotonic()


def _resolve_attachments(
    spec: list[dict[str, Any]] | None, files: list[AttachmentRecord], *, kept: list[AttachmentRecord]
) -> list[AttachmentRecord]:
    """Apply a message body's ``attachments`` list: ids of kept attachments, or indexes into
    the uploaded ``files[n]``. Without the list, uploads are added to what was there."""
    if spec is None:
        return kept + files
    by_id = {a.id: a for a in kept}
    result: list[AttachmentRecord] = []
    used: set[int] = set()
    for item in spec:
        ref = int(item["id"])
        if ref in by_id:
            result.append(by_id[ref])
        elif 0 <= ref < len(files):
            attachment = files[ref]
            attachment.filename = item.get("filename") or attachment.filename
            attachment.description = item.get("description", attachment.description)
            result.append(attachment)
            used.add(ref)
    result.extend(f for i, f in enumerate(files) if i not in used)
    return result


def _too_long(field: str, limit: int) -> ApiError:
    """Discord's answer to a value over its length limit: 50035 with the nested ``errors`` object."""
    error = {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
    return ApiError(400, "Invalid Form Body", 50035, {field: {"_errors": [error]}})


def embed_length(embed: dict[str, Any]) -> int:
    """What Discord counts towards an embed's 6000 characters."""
    fields = embed.get("fields") or []
    return (
        len(embed.get("title") or "")
        + len(embed.get("description") or "")
        + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        + len((embed.get("footer") or {}).get("text") or "")
        + len((embed.get("author") or {}).get("name") or "")
    )


def _validate(message: MessageRecord) -> None:
    """The limits the OpenAPI schema cannot say (its per-field maxLengths are checked before this)."""
    if not (message.content or message.embeds or message.attachments or message.components):
        raise ApiError(400, "Cannot send an empty message", 50006)
    if len(message.content) > MAX_CONTENT:
        raise _too_long("content", MAX_CONTENT)
    if len(message.embeds) > MAX_EMBEDS:
        raise _too_long("embeds", MAX_EMBEDS)
    if sum(embed_length(e) for e in message.embeds) > MAX_EMBED_TOTAL:
        raise _too_long("embeds", MAX_EMBED_TOTAL)

"""The JSON Discord would send for each record of the fake's world: users, members, channels,
guilds, attachments and messages.

:class:`Payloads` is mixed into :class:`~.state.FakeState`, whose records and lookups it reads.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from .models import THREAD, AttachmentRecord, MessageRecord, emoji_payload, iso_now

_USER_MENTION = re.compile(r"<@!?(\d+)>")


class Payloads:
    """The payload builders of :class:`~.state.FakeState` (``state.message_payload(m)`` and the like).
    They read its records (``bot``, ``users``, ``interactions``, ``http_base``) and its lookups
    (``user``, ``guild``, ``channel``, ``permissions``)."""

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
                nsfw=channel.nsfw,
                parent_id=str(channel.parent_id) if channel.parent_id is not None else None,
                topic=None,
                last_message_id=None,
                rate_limit_per_user=0,
            )
        if channel.type == THREAD:  # Discord sends a thread without nsfw: it is its parent channel's
            del payload["nsfw"], payload["permission_overwrites"], payload["topic"]
            payload.update(
                owner_id=str(self.bot.id), member_count=1, message_count=0,
                thread_metadata={"archived": False, "auto_archive_duration": 1440, "locked": False,
                                 "archive_timestamp": iso_now()},
            )  # fmt: skip
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
            "channels": [self.channel_payload(c) for c in guild.channels if guild.channels[c].type != THREAD],
            "threads": [self.channel_payload(c) for c in guild.channels if guild.channels[c].type == THREAD],
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

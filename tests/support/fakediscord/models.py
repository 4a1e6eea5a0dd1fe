"""The in-memory records of the fake Discord.

Plain mutable dataclasses: the fake's REST and gateway handlers fill them in, tests read them.
Nothing here talks to the network or knows about aiohttp.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions), the ones tests use.
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
ALL_PERMISSIONS = (1 << 53) - 1

#: What @everyone gets in a fresh guild made by the fake (no MANAGE_GUILD, no ADMINISTRATOR).
DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
)

# Message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_CUSTOM_EMOJI = re.compile(r"^<?a?:?([A-Za-z0-9_~]+):(\d+)>?$")


def normalize_emoji(emoji: str) -> str:
    """One key per emoji: the unicode character itself, or ``name:id`` for a custom emoji
    (accepts ``<:name:id>``, ``<a:name:id>``, ``a:name:id`` and ``name:id``)."""
    match = _CUSTOM_EMOJI.match(emoji)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    return emoji


def emoji_payload(key: str) -> dict[str, Any]:
    match = _CUSTOM_EMOJI.match(key)
    if match:
        return {"id": match.group(2), "name": match.group(1), "animated": False}
    return {"id": None, "name": key}


THREAD = 11  # a public thread's channel type


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


class SnowflakeFactory:
    """Real-looking, strictly increasing snowflakes (their timestamp part is the current time)."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self, shard: tuple[int, int] | None = None) -> int:
        """The next snowflake; with ``shard`` ``(id, count)`` the next one on that shard, whose
        timestamp part ``% count`` is ``id`` (Discord's rule for a guild's shard)."""
        candidate = max((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22, self._last + 1)
        if shard is not None:
            shard_id, count = shard
            stamp = candidate >> 22
            candidate = (stamp + (shard_id - stamp) % count) << 22
            candidate = candidate if candidate > self._last else (((candidate >> 22) + count) << 22)
        self._last = candidate
        return self._last


@dataclass
class UserRecord:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class RoleRecord:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class ChannelRecord:
    id: int
    name: str
    type: int = 0  # 0 guild text, 1 DM, 11 public thread
    guild_id: int | None = None
    nsfw: bool = False  # Discord's "age-restricted" mark; a thread takes its parent channel's
    parent_id: int | None = None  # a thread's channel
    position: int = 0
    recipient_ids: list[int] = field(default_factory=list)
    #: member permission overwrites that deny: user id -> the permission bits denied in this channel
    denied: dict[int, int] = field(default_factory=dict)


@dataclass
class MemberRecord:
    guild_id: int
    user_id: int
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)


@dataclass
class GuildRecord:
    id: int
    name: str
    owner_id: int
    roles: dict[int, RoleRecord] = field(default_factory=dict)
    channels: dict[int, ChannelRecord] = field(default_factory=dict)
    members: dict[int, MemberRecord] = field(default_factory=dict)

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions as Discord computes them: @everyone | member roles,
        everything for the owner or an ADMINISTRATOR. (Channel overwrites: ``FakeState.permissions``.)"""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        value = self.roles[self.id].permissions  # @everyone's id is the guild's id
        member = self.members.get(user_id)
        for role_id in member.role_ids if member else ():
            value |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value


@dataclass
class AttachmentRecord:
    id: int
    filename: str
    content_type: str
    data: bytes
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Revision:
    """A message's state after its creation or one edit."""

    at: float  # time.monotonic()
    timestamp: str
    via: str  # "POST /api/v10/channels/1/messages", "callback type 7", ...
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[AttachmentRecord]
    allowed_mentions: dict[str, Any] | None
    flags: int


@dataclass
class MessageRecord:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None
    interaction_id: int | None = None
    message_reference: dict[str, Any] | None = None
    nonce: str | None = None
    created_at: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    #: revisions[0] is the message as created; each later entry is the state after one edit.
    revisions: list[Revision] = field(default_factory=list)
    #: emoji key (see normalize_emoji) -> user ids in the order they reacted.
    reactions: dict[str, list[int]] = field(default_factory=dict)
    deleted: bool = False
    deleted_at: float | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def edits(self) -> list[Revision]:
        return self.revisions[1:]

    def attachment(self, filename: str) -> AttachmentRecord:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment
        raise KeyError(
            f"message {self.id} has no attachment {filename!r}; it has {[a.filename for a in self.attachments]}"
        )

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in iter_components(self.components) if "custom_id" in c]

    def snapshot(self, via: str) -> None:
        self.revisions.append(
            Revision(
                at=time.monotonic(),
                timestamp=iso_now(),
                via=via,
                content=self.content,
                embeds=list(self.embeds),
                components=list(self.components),
                attachments=list(self.attachments),
                allowed_mentions=self.allowed_mentions,
                flags=self.flags,
            )
        )


def iter_components(components: list[dict[str, Any]]):
    """Every component, depth first (action rows, sections and containers included)."""
    for component in components:
        yield component
        yield from iter_components(component.get("components", []))
        if isinstance(component.get("accessory"), dict):
            yield component["accessory"]
        if isinstance(component.get("component"), dict):  # a label (type 18) around one input
            yield from iter_components([component["component"]])


@dataclass
class CallbackRecord:
    """One ``POST /interactions/{id}/{token}/callback``."""

    type: int  # 4 message, 5 deferred message, 6 deferred update, 7 update, 8 autocomplete, 9 modal
    data: dict[str, Any]
    attachments: list[AttachmentRecord]
    at: float = field(default_factory=time.monotonic)

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)


@dataclass
class RequestRecord:
    method: str
    path: str  # decoded URL path, e.g. "/api/v10/channels/1/messages/2"
    raw_path: str  # as sent (percent-encoded, with the query)
    query: dict[str, str]
    started: float  # time.monotonic()
    status: int | None = None
    finished: float | None = None
    json: Any = None  # the JSON body, or the multipart's payload_json
    files: list[tuple[str, int]] = field(default_factory=list)  # (filename, size)
    note: str = ""  # "injected 429", "upload limit", "no route", ...


@dataclass
class SyncRecord:
    """One bulk overwrite of application commands (guild_id None: global)."""

    guild_id: int | None
    commands: list[dict[str, Any]]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FaultRule:
    method: str  # "*" matches any
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    global_: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and self.pattern.search(path) is not None


@dataclass
class World:
    """Ids made by ``FakeDiscord.default_world()``."""

    guild_id: int
    channel_id: int
    admin_id: int  # has MANAGE_GUILD through the "Admin" role
    member_id: int  # @everyone permissions only
    bot_id: int
    admin_role_id: int


@dataclass
class InteractionRecord:
    """An interaction the fake dispatched, and everything the bot answered to it."""

    id: int
    token: str
    type: int  # 2 application command, 3 component, 5 modal submit
    user_id: int
    channel_id: int
    guild_id: int | None
    payload: dict[str, Any]  # the INTERACTION_CREATE data as sent
    name: str | None = None  # command name for type 2 ("limits" for /limits set ...)
    custom_id: str | None = None  # for type 3
    message_id: int | None = None  # the message a component was clicked on
    created_at: float = field(default_factory=time.monotonic)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    #: The message the initial response made (4/5), or for components answered with 6/7 the
    #: message the component was on. ``@original`` webhook edits land here.
    original: MessageRecord | None = None
    followups: list[MessageRecord] = field(default_factory=list)
    fake: Any = field(default=None, repr=False)

    @property
    def response(self) -> CallbackRecord | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def response_type(self) -> int | None:
        return self.callbacks[0].type if self.callbacks else None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def ephemeral(self) -> bool:
        return bool(self.callbacks and self.callbacks[0].ephemeral)

    async def wait_response(self, timeout: float = 5.0) -> CallbackRecord:
        """The initial callback, once the bot has sent it."""
        await self.fake.wait_for(lambda: self.callbacks, timeout=timeout, what=f"a response to interaction {self.id}")
        return self.callbacks[0]

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[MessageRecord]:
        """The first ``count`` followup messages, once they exist."""
        what = f"{count} followup(s) to interaction {self.id}"
        await self.fake.wait_for(lambda: len(self.followups) >= count, timeout=timeout, what=what)
        return self.followups[:count]

    async def wait_original(self, predicate=None, timeout: float = 5.0) -> MessageRecord:
        """The original response message, once it exists and ``predicate(message)`` holds
        (e.g. ``lambda m: m.edits`` to wait for a deferred response to be filled in)."""

        def ready():
            return self.original is not None and (predicate is None or predicate(self.original))

        await self.fake.wait_for(ready, timeout=timeout, what=f"the original response of interaction {self.id}")
        return self.original

"""``FakeDiscord``: the object tests hold. It starts the server, builds the world, drives the
bot (slash commands, clicks, reactions, user messages, gateway faults) and answers questions
about what the bot did."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from .channels import reaction_event
from .gateway import Gateway
from .interactions import (
    MESSAGE_COMMAND,
    MODAL_CALLBACK,
    autocomplete_data,
    command_data,
    find_command,
    find_component,
    interaction_payload,
    message_command_data,
    modal_submit_data,
)
from .models import (
    DEFAULT_EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    FaultRule,
    InteractionRecord,
    MessageRecord,
    RequestRecord,
    SyncRecord,
    World,
    normalize_emoji,
)
from .server import RestApi
from .state import FakeState

MiB = 1024 * 1024


class FakeDiscord:
    def __init__(
        self,
        token: str = "test-token",
        *,
        bot_name: str = "animabot",
        upload_limit: int = 10 * MiB,
        heartbeat_interval_ms: int = 41250,
        interaction_deadline: float | None = 3.0,
    ) -> None:
        self.token = token
        #: Request bodies above this many bytes get 413 {"code": 40005}.
        self.upload_limit = upload_limit
        #: Seconds the bot has for its first interaction callback (None: no limit), like Discord's 3 s.
        self.interaction_deadline = interaction_deadline
        self.state = FakeState(bot_name=bot_name)
        self.gateway = Gateway(self.state, token, heartbeat_interval_ms=heartbeat_interval_ms)
        self.faults: list[FaultRule] = []
        #: Exceptions inside the fake's own handlers (each answered with a 400); should stay empty.
        self.errors: list[str] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed = asyncio.Event()
        self.gateway.on_change = self.notify

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeDiscord:
        self._runner = web.AppRunner(RestApi(self).build_app(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.state.http_base = f"http://127.0.0.1:{self._port}"
        self.gateway.resume_url = f"ws://127.0.0.1:{self._port}/gateway-resume"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self.gateway.close_all()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be: ``http://127.0.0.1:PORT/api/v10``."""
        return f"{self.http_base}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be: ``ws://127.0.0.1:PORT/gateway``."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def bot_id(self) -> int:
        """The bot user's id, which is also the application id."""
        return self.state.bot.id

    application_id = bot_id

    # -- building the world ----------------------------------------------------------------------

    def add_guild(self, name: str = "Test Guild", *, everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS) -> int:
        """A guild with its @everyone role, the bot (and the guild owner) as members. Add guilds
        before the bot connects: later ones are not announced with GUILD_CREATE."""
        return self.state.add_guild(name, everyone_permissions=everyone_permissions).id

    def add_role(self, guild_id: int, name: str, permissions: int) -> int:
        return self.state.add_role(guild_id, name, permissions).id

    def add_channel(self, guild_id: int, name: str = "general") -> int:
        return self.state.add_channel(guild_id, name).id

    def add_user(self, name: str, *, bot: bool = False) -> int:
        return self.state.add_user(name, bot=bot).id

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        name: str = "user",
        *,
        permissions: int = 0,
        roles: tuple[int, ...] | list[int] = (),
    ) -> int:
        """Make ``user_id`` (or a new user called ``name``) a member. ``permissions`` (on top of
        @everyone's) come through a new role named "<name> role". Returns the user id."""
        if user_id is None:
            user_id = self.add_user(name)
        role_ids = list(roles)
        if permissions:
            role_ids.append(self.add_role(guild_id, f"{self.state.user(user_id).name} role", permissions))
        self.state.add_member(guild_id, user_id, role_ids=role_ids)
        return user_id

    def default_world(self) -> World:
        """Guild "Test Guild" with #general, an admin (MANAGE_GUILD via role "Admin") and a
        plain member."""
        guild_id = self.add_guild("Test Guild")
        channel_id = self.add_channel(guild_id, "general")
        admin_role_id = self.add_role(guild_id, "Admin", MANAGE_GUILD)
        admin_id = self.add_member(guild_id, name="admin", roles=[admin_role_id])
        member_id = self.add_member(guild_id, name="member")
        return World(guild_id, channel_id, admin_id, member_id, self.bot_id, admin_role_id)

    def permissions_of(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        return self.state.permissions(guild_id, user_id, channel_id)

    async def deny(self, channel_id: int, permissions: int, *, user_id: int | None = None) -> None:
        """A member overwrite in ``channel_id`` denies ``permissions`` to ``user_id`` (the bot by
        default), replacing any earlier one; ``0`` removes it. CHANNEL_UPDATE is dispatched."""
        channel = self.state.channel(channel_id)
        user_id = self.bot_id if user_id is None else user_id
        if permissions:
            channel.denied[user_id] = permissions
        else:
            channel.denied.pop(user_id, None)
        self.notify()
        await self.gateway.dispatch("CHANNEL_UPDATE", self.state.channel_payload(channel.id))

    async def delete_channel(self, channel_id: int) -> None:
        """Someone deletes the channel: CHANNEL_DELETE, and 404 Unknown Channel (10003) from then on.
        What was said there stays readable through ``messages_in``."""
        payload = self.state.channel_payload(int(channel_id))
        self.state.delete_channel(int(channel_id))
        self.notify()
        await self.gateway.dispatch("CHANNEL_DELETE", payload)

    # -- reading what happened ----------------------------------------------------------------------

    def message(self, message_id: int) -> MessageRecord:
        return self.state.messages[int(message_id)]

    def messages_in(
        self, channel_id: int, *, include_deleted: bool = True, include_ephemeral: bool = True
    ) -> list[MessageRecord]:
        """Every message in the channel, oldest first (interaction responses included)."""
        return [
            m
            for m in self.state.channel_messages[int(channel_id)]
            if (include_deleted or not m.deleted) and (include_ephemeral or not m.ephemeral)
        ]

    def bot_messages(self, channel_id: int | None = None, *, include_deleted: bool = False) -> list[MessageRecord]:
        """Messages the bot wrote (channel sends and interaction responses), oldest first."""
        pool = self.state.messages.values() if channel_id is None else self.state.channel_messages[int(channel_id)]
        return [m for m in pool if m.author_id == self.bot_id and (include_deleted or not m.deleted)]

    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged requests, in arrival order; ``path`` is a regex searched in the decoded path."""
        pattern = re.compile(path) if path else None
        return [
            r
            for r in self.state.requests
            if (method is None or r.method == method) and (pattern is None or pattern.search(r.path))
        ]

    @property
    def interactions(self) -> list[InteractionRecord]:
        return list(self.state.interactions.values())

    @property
    def sync_calls(self) -> list[SyncRecord]:
        return list(self.state.syncs)

    def synced_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The commands as last synced to ``guild_id`` (None: global), as the fake answered them."""
        return list(self.state.commands.get(guild_id, []))

    def command(self, name: str, guild_id: int | None = None, kind: int = 1) -> dict[str, Any]:
        """A synced command: chat input (``kind`` 1) unless asked for a user (2) or message (3) command."""
        return find_command(self.state, name, guild_id, kind)

    # -- faults ------------------------------------------------------------------------------------------

    def inject_429(
        self, method: str, path_regex: str, count: int = 1, retry_after: float = 0.5, global_: bool = False
    ) -> FaultRule:
        """Answer the next ``count`` requests whose method matches (``"*"``: any) and whose
        decoded path matches ``path_regex`` (re.search) with a 429. ``rule.hits`` counts them."""
        rule = FaultRule(method.upper() if method != "*" else "*", re.compile(path_regex), count, retry_after, global_)
        self.faults.append(rule)
        return rule

    # -- waiting -------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake ``wait_for`` callers (the fake calls it after every change)."""
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str | None = None) -> Any:
        """Wait until ``predicate()`` is truthy and return its value; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"fakediscord: timed out after {timeout}s waiting for {what or predicate}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Until a client has identified and been sent READY and its GUILD_CREATEs. (discord.py
        fires on_ready ``guild_ready_timeout`` later; ``await bot.wait_until_ready()`` for that.)"""
        await self.gateway.wait_ready(timeout)

    # -- driving the bot ---------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send any gateway event as is; returns its sequence number."""
        return await self.gateway.dispatch(event, data)

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        attachments: dict[str, tuple] | None = None,
        check_permissions: bool = True,
    ) -> InteractionRecord:
        """A user runs ``/name [group] [subcommand] options...``. ``name`` may hold the whole
        path ("limits set"). ``attachments`` maps attachment options to ``(filename, bytes[,
        content_type])``. Refuses (ValueError) what Discord's client would not send: unknown or
        missing options, wrong types, out-of-range values, and (unless ``check_permissions`` is
        False) a command whose ``default_member_permissions`` the user lacks."""
        words = name.split()
        if len(words) > 1:
            name = words[0]
            if len(words) == 3:
                group, subcommand = words[1], words[2]
            else:
                subcommand = words[1]
        if guild_id is None:
            guild_id = self.state.channel(channel_id).guild_id
        command = find_command(self.state, name, guild_id)
        required = command.get("default_member_permissions")
        if check_permissions and required is not None and guild_id is not None:
            have = self.state.permissions(guild_id, user_id)
            if have & int(required) != int(required):
                raise PermissionError(f"user {user_id} lacks {required} (has {have}) and cannot see /{name}")
        values = {**(options or {}), **(attachments or {})}
        data = command_data(self.state, command, values, group=group, subcommand=subcommand, guild_id=guild_id)
        return await self._interact(2, data, user_id=user_id, channel_id=channel_id, guild_id=guild_id, name=name)

    async def autocomplete(
        self,
        name: str,
        focused: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        channel_id: int,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """A user types in option ``focused`` of ``/name`` (``options`` holds what is typed so far,
        ``focused``'s partial text included): an autocomplete interaction (type 4). Returns the
        choices of the bot's answer (callback type 8), checked against Discord's limits."""
        guild_id = self.state.channel(channel_id).guild_id
        command = find_command(self.state, name, guild_id)
        values = {focused: "", **(options or {})}
        data = autocomplete_data(command, values, focused)
        record = await self._interact(4, data, user_id=user_id, channel_id=channel_id, guild_id=guild_id, name=name)
        response = await record.wait_response(timeout)
        return response.data["choices"]

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int,
        values: list[str] | None = None,
        check_component: bool = True,
    ) -> InteractionRecord:
        """A user clicks the button (or picks ``values`` in the select) ``custom_id`` on a
        message. Refuses (LookupError/ValueError) a component that is not on the message as it
        is now, or a disabled one, unless ``check_component`` is False."""
        message = self.message(message_id)
        component = find_component(message.components, custom_id)
        if check_component and component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r}; it has {message.custom_ids()}")
        if check_component and component.get("disabled"):
            raise ValueError(f"component {custom_id!r} on message {message_id} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": (component or {}).get("type", 2)}
        if values is not None:
            data["values"] = list(values)
        return await self._interact(
            3,
            data,
            user_id=user_id,
            channel_id=message.channel_id,
            guild_id=message.guild_id,
            custom_id=custom_id,
            message=message,
        )

    async def message_command(self, name: str, message_id: int, *, user_id: int) -> InteractionRecord:
        """A user picks the message context-menu command ``name`` (Apps → name) on a message."""
        message = self.message(message_id)
        command = find_command(self.state, name, message.guild_id, kind=MESSAGE_COMMAND)
        data = message_command_data(self.state, command, message)
        return await self._interact(
            2, data, user_id=user_id, channel_id=message.channel_id, guild_id=message.guild_id, name=name
        )

    async def submit_modal(self, opened: InteractionRecord, values: dict[str, str] | None = None) -> InteractionRecord:
        """The member who saw the modal ``opened`` answered with (callback type 9) submits it, with
        ``values`` typed over the prefilled ones: an interaction of type 5."""
        response = opened.response
        if response is None or response.type != MODAL_CALLBACK:
            raise ValueError(f"interaction {opened.id} was not answered with a modal (response {opened.response_type})")
        data = modal_submit_data(response.data, values or {})
        message = self.message(opened.message_id) if opened.message_id is not None else None
        return await self._interact(
            5, data, user_id=opened.user_id, channel_id=opened.channel_id, guild_id=opened.guild_id,
            custom_id=data["custom_id"], message=message,
        )  # fmt: skip

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        name: str | None = None,
        custom_id: str | None = None,
        message: MessageRecord | None = None,
    ) -> InteractionRecord:
        interaction_id, token = self.state.next_id(), f"fake-{secrets.token_urlsafe(24)}"
        payload = interaction_payload(
            self.state,
            interaction_id=interaction_id,
            token=token,
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            data=data,
            upload_limit=self.upload_limit,
        )
        if message is not None:
            payload["message"] = self.state.message_payload(message)
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            payload=payload,
            name=name,
            custom_id=custom_id,
            message_id=message.id if message else None,
            fake=self,
        )
        self.state.interactions[interaction_id] = record
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return record

    async def react(self, channel_id: int, message_id: int, emoji: str, *, user_id: int) -> None:
        """``user_id`` adds ``emoji`` (unicode, or ``<:name:id>``) to a message: recorded, and
        MESSAGE_REACTION_ADD is dispatched."""
        message = self.state.message(channel_id, message_id)
        key = normalize_emoji(emoji)
        users = message.reactions.setdefault(key, [])
        if user_id not in users:
            users.append(user_id)
        self.notify()
        await self.gateway.dispatch("MESSAGE_REACTION_ADD", reaction_event(self.state, message, key, user_id))

    async def unreact(self, channel_id: int, message_id: int, emoji: str, *, user_id: int) -> None:
        message = self.state.message(channel_id, message_id)
        key = normalize_emoji(emoji)
        if user_id in message.reactions.get(key, []):
            message.reactions[key].remove(user_id)
        data = reaction_event(self.state, message, key, user_id)
        data.pop("member", None)
        self.notify()
        await self.gateway.dispatch("MESSAGE_REACTION_REMOVE", data)

    async def user_message(
        self, channel_id: int, content: str = "", *, user_id: int, attachments: list[tuple] | None = None
    ) -> MessageRecord:
        """``user_id`` posts in a channel; MESSAGE_CREATE is dispatched. ``attachments`` are
        ``(filename, bytes[, content_type])`` and are served by the fake like the bot's."""
        files = [self.state.new_attachment(*a) for a in attachments or []]
        message = self.state.create_message(channel_id, user_id, {"content": content}, files, via="user")
        payload = self.state.message_payload(message)
        if message.guild_id is not None:
            member = self.state.member_payload(message.guild_id, user_id)
            payload["member"] = {k: v for k, v in member.items() if k != "user"}
        self.notify()
        await self.gateway.dispatch("MESSAGE_CREATE", payload)
        return message

    # -- gateway faults --------------------------------------------------------------------------

    async def reconnect(self, timeout: float = 5.0) -> None:
        """Send op 7 and wait until the client has resumed (op 6 on ``resume_gateway_url``),
        been replayed what it missed, and been sent RESUMED."""
        resumes = self.gateway.resumes
        await self.gateway.send_reconnect()
        await self.wait_for(lambda: self.gateway.resumes > resumes, timeout, "the client to resume")

    @contextlib.asynccontextmanager
    async def while_disconnected(self, timeout: float = 5.0) -> AsyncIterator[None]:
        """``async with fake.while_disconnected(): await fake.react(...)``: sends op 7 and holds
        the client's RESUME until the block ends, so what the block dispatches is missed live
        and must arrive by replay. Waits for RESUMED on the way out."""
        resumes = self.gateway.resumes
        self.gateway.hold_resumes()
        try:
            await self.gateway.send_reconnect()
            yield
        finally:
            self.gateway.release_resumes()
        await self.wait_for(lambda: self.gateway.resumes > resumes, timeout, "the client to resume")

    async def invalid_session(self, timeout: float = 10.0) -> None:
        """Send op 9 (``d: false``) and wait for the client's fresh IDENTIFY and READY. discord.py
        sleeps 5 s in ``before_identify_hook`` first: override it in test bots."""
        identifies = self.gateway.identifies
        await self.gateway.send_invalid_session()
        await self.wait_for(lambda: self.gateway.identifies > identifies, timeout, "the client to identify again")

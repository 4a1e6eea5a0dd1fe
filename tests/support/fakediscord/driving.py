"""Driving the bot as Discord's users would: slash commands and their autocomplete, clicks,
message commands, modal submits, reactions and messages, each dispatched over the gateway.

:class:`Driving` is mixed into :class:`~.fake.FakeDiscord`; it uses its ``state``, ``gateway``,
``notify``, ``message`` and ``upload_limit``. What a real client could not send is refused here
(ValueError, LookupError, PermissionError), before anything reaches the bot.
"""

from __future__ import annotations

import secrets
from typing import Any

from .channels import reaction_event
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
from .models import InteractionRecord, MessageRecord, normalize_emoji


class Driving:
    """``await fake.slash(...)``, ``await fake.click(...)``, ``await fake.react(...)`` and the like."""

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

"""Building INTERACTION_CREATE payloads the way Discord's client would: option types come from
the commands the bot synced, and what a real user could not send is refused with ValueError."""

from __future__ import annotations

import math
from typing import Any

from .models import iter_components
from .state import FakeState

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11


CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
MODAL_SUBMIT, MODAL_CALLBACK = 5, 9  # an interaction type; the callback type that opens a modal
TEXT_INPUT, LABEL = 4, 18


def find_command(state: FakeState, name: str, guild_id: int | None, kind: int = CHAT_INPUT) -> dict[str, Any]:
    """The synced command of ``kind`` called ``name``: the guild's own first, then the global one."""
    for scope in (guild_id, None):
        for command in state.commands.get(scope, []):
            if command["name"] == name and command.get("type", 1) == kind:
                return command
    synced = {scope: [(c["name"], c.get("type", 1)) for c in cmds] for scope, cmds in state.commands.items()}
    raise LookupError(f"{name!r} (type {kind}) was never synced (synced so far, by guild id or None: {synced})")


def message_command_data(state: FakeState, command: dict[str, Any], message) -> dict[str, Any]:
    """``data`` of a message context-menu interaction on ``message``, resolved in full as Discord sends it
    (a message command's target carries its content and attachments whatever the bot's intents)."""
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": MESSAGE_COMMAND,
        "target_id": str(message.id),
        "resolved": {"messages": {str(message.id): state.message_payload(message)}},
    }
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    return data


def _typed(item: dict[str, Any], values: dict[str, str]) -> str:
    """What a text input holds when submitted: what the member typed, else its prefilled value."""
    return values.get(item["custom_id"], item.get("value") or "")


def modal_submit_data(modal: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """``data`` of a MODAL_SUBMIT for the modal the bot sent (callback type 9), with the member's
    ``values`` by text input custom_id (others keep their prefilled value). Refuses (ValueError) what Discord's client would not send: an
    unknown input, a required one left empty, or a value outside its length limits."""
    inputs: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for row in modal.get("components") or []:
        items = row.get("components") if row["type"] == 1 else [row.get("component")]
        answered = []
        for item in items or []:
            if item and item.get("type") == TEXT_INPUT:
                inputs[item["custom_id"]] = item
                answered.append({"type": TEXT_INPUT, "custom_id": item["custom_id"], "value": _typed(item, values)})
        if row["type"] == 1:
            rows.append({"type": 1, "components": answered})
        elif answered:
            rows.append({"type": LABEL, "component": answered[0]})
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise ValueError(f"modal {modal.get('custom_id')!r} has no input(s) {unknown}; it has {sorted(inputs)}")
    for custom_id, item in inputs.items():
        value = _typed(item, values)
        if item.get("required", True) and not value:
            raise ValueError(f"modal input {custom_id!r} is required")
        if value:
            _check_length(item, value, f"modal input {custom_id!r}")
    return {"custom_id": modal["custom_id"], "components": rows}


def _child(node: dict[str, Any], name: str, kind: int, path: str) -> dict[str, Any]:
    for option in node.get("options") or []:
        if option["name"] == name and option["type"] == kind:
            return option
    what = "subcommand group" if kind == SUB_COMMAND_GROUP else "subcommand"
    have = [o["name"] for o in node.get("options") or [] if o["type"] == kind]
    raise ValueError(f"/{path} has no {what} {name!r}; it has {have}")


def command_data(
    state: FakeState,
    command: dict[str, Any],
    values: dict[str, Any],
    *,
    group: str | None,
    subcommand: str | None,
    guild_id: int | None,
) -> dict[str, Any]:
    """``data`` of a chat-input interaction, with ``resolved`` for users, channels, roles and
    attachments. Attachment values are ``(filename, bytes)`` or ``(filename, bytes, content_type)``."""
    path = command["name"]
    node = command
    if group is not None:
        node = _child(node, group, SUB_COMMAND_GROUP, path)
        path += f" {group}"
    if subcommand is not None:
        node = _child(node, subcommand, SUB_COMMAND, path)
        path += f" {subcommand}"
    nested = [o["name"] for o in node.get("options") or [] if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
    if nested:
        raise ValueError(f"/{path} needs a subcommand (group) to be named: one of {nested}")

    definitions = {o["name"]: o for o in node.get("options") or []}
    unknown = sorted(set(values) - set(definitions))
    if unknown:
        raise ValueError(f"/{path} has no option(s) {unknown}; it has {sorted(definitions)}")
    missing = [n for n, d in definitions.items() if d.get("required") and n not in values]
    if missing:
        raise ValueError(f"/{path} needs option(s) {missing}")

    resolved: dict[str, dict[str, Any]] = {}
    options = [
        _option(state, definitions[name], values[name], resolved, guild_id, path)
        for name in definitions
        if name in values
    ]
    for step, kind in ((subcommand, SUB_COMMAND), (group, SUB_COMMAND_GROUP)):
        if step is not None:
            options = [{"type": kind, "name": step, "options": options}]
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1, "options": options}
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    if resolved:
        data["resolved"] = resolved
    return data


def autocomplete_data(command: dict[str, Any], values: dict[str, Any], focused: str) -> dict[str, Any]:
    """``data`` of an autocomplete interaction (type 4): the options typed so far, as strings or numbers
    the client has not validated yet, with ``focused`` on the one being typed. Refuses (ValueError)
    an option the command lacks or one that has no ``autocomplete``."""
    definitions = {o["name"]: o for o in command.get("options") or []}
    unknown = sorted(set(values) - set(definitions))
    if unknown:
        raise ValueError(f"/{command['name']} has no option(s) {unknown}; it has {sorted(definitions)}")
    if not definitions.get(focused, {}).get("autocomplete"):
        raise ValueError(f"/{command['name']} option {focused!r} has no autocomplete")
    options = []
    for name, value in values.items():
        option = {"type": definitions[name]["type"], "name": name, "value": value}
        if name == focused:
            option["focused"] = True
        options.append(option)
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1, "options": options}
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    return data


def check_autocomplete_answer(data: dict[str, Any]) -> None:
    """What Discord refuses in an autocomplete result (callback type 8): more than 25 choices, a name
    outside 1..100 characters, a string value over 100."""
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) > 25:
        raise ValueError(f"an autocomplete answer has 0 to 25 choices, got {choices!r}")
    for choice in choices:
        name, value = choice.get("name"), choice.get("value")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise ValueError(f"an autocomplete choice name has 1 to 100 characters, got {name!r}")
        if isinstance(value, str) and len(value) > 100:
            raise ValueError(f"an autocomplete choice value has at most 100 characters, got {len(value)}")


def _option(
    state: FakeState, definition: dict[str, Any], value: Any, resolved: dict, guild_id: int | None, path: str
) -> dict[str, Any]:
    kind, name = definition["type"], definition["name"]
    where = f"/{path} option {name!r}"
    if kind == STRING:
        if not isinstance(value, str):
            raise ValueError(f"{where} takes a str, got {value!r}")
        _check_length(definition, value, where)
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} takes an int, got {value!r}")
        _check_range(definition, value, where)
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where} takes a number, got {value!r}")
        _check_range(definition, value, where)
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError(f"{where} takes a bool, got {value!r}")
    elif kind in (USER, MENTIONABLE) and int(value) in state.users:
        value = str(int(value))
        resolved.setdefault("users", {})[value] = state.user_payload(int(value))
        if guild_id is not None and int(value) in state.guild(guild_id).members:
            member = state.member_payload(guild_id, int(value), permissions=True)
            member.pop("user")
            resolved.setdefault("members", {})[value] = member
    elif kind in (ROLE, MENTIONABLE) and guild_id is not None and int(value) in state.guild(guild_id).roles:
        value = str(int(value))
        resolved.setdefault("roles", {})[value] = state.guild(guild_id).roles[int(value)].payload()
    elif kind == CHANNEL:
        channel = state.channel(value)
        value = str(channel.id)
        payload = state.channel_payload(channel.id, permissions_for=state.bot.id)
        resolved.setdefault("channels", {})[value] = payload
    elif kind == ATTACHMENT:
        if not (isinstance(value, tuple) and len(value) in (2, 3)):
            raise ValueError(f"{where} takes (filename, bytes[, content_type]), got {type(value).__name__}")
        attachment = state.new_attachment(*value)
        value = str(attachment.id)
        resolved.setdefault("attachments", {})[value] = state.attachment_payload(attachment)
    else:
        raise ValueError(f"{where}: {value!r} is no known user, role or channel (option type {kind})")
    if definition.get("choices") and value not in [c["value"] for c in definition["choices"]]:
        raise ValueError(f"{where} must be one of {[c['value'] for c in definition['choices']]}, got {value!r}")
    return {"type": kind, "name": name, "value": value}


def _check_length(definition: dict[str, Any], value: str, where: str) -> None:
    low, high = definition.get("min_length"), definition.get("max_length")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise ValueError(f"{where} must be {low}..{high} characters long, got {len(value)}")


def _check_range(definition: dict[str, Any], value: float, where: str) -> None:
    low, high = definition.get("min_value"), definition.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where} must be between {low} and {high}, got {value}")


def find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in iter_components(components):
        if component.get("custom_id") == custom_id:
            return component
    return None


def interaction_payload(
    state: FakeState,
    *,
    interaction_id: int,
    token: str,
    type: int,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    data: dict[str, Any],
    upload_limit: int,
) -> dict[str, Any]:
    """INTERACTION_CREATE data, with the member's and the app's permissions computed from roles."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(state.bot.id),
        "type": type,
        "token": token,
        "version": 1,
        "data": data,
        "channel_id": str(channel_id),
        "channel": state.channel_payload(channel_id, permissions_for=user_id),
        "app_permissions": str(state.permissions(guild_id, state.bot.id, channel_id)),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": upload_limit,
    }
    if guild_id is not None:
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=state.member_payload(guild_id, user_id, permissions=True),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        payload.update(
            user=state.user_payload(user_id),
            authorizing_integration_owners={"1": str(user_id)},
            context=1,
        )
    return payload

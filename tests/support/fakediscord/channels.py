"""REST routes for channels, messages, reactions, guilds and users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from .errors import ApiError
from .models import (
    ATTACH_FILES,
    MANAGE_MESSAGES,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    MessageRecord,
    emoji_payload,
    normalize_emoji,
)
from .server import API, RECORD
from .state import FakeState
from .wire import json_response, no_content

if TYPE_CHECKING:
    from .server import RestApi


def add_channel_routes(api: RestApi, router: web.UrlDispatcher) -> None:
    routes = ChannelRoutes(api)
    channel = f"{API}/channels/{{channel_id}}"
    message = f"{channel}/messages/{{message_id}}"
    router.add_get(f"{API}/users/{{user_id}}", routes.get_user)
    router.add_post(f"{API}/users/@me/channels", routes.open_dm)
    router.add_get(f"{API}/users/@me/guilds", routes.my_guilds)
    router.add_get(channel, routes.get_channel)
    router.add_post(f"{channel}/typing", routes.typing)
    router.add_get(f"{channel}/messages", routes.history)
    router.add_post(f"{channel}/messages", routes.send)
    router.add_get(message, routes.get_message)
    router.add_patch(message, routes.edit)
    router.add_delete(message, routes.delete)
    router.add_get(f"{message}/reactions/{{emoji}}", routes.reaction_users)
    router.add_put(f"{message}/reactions/{{emoji}}/@me", routes.add_reaction)
    router.add_delete(f"{message}/reactions/{{emoji}}/{{user_id}}", routes.remove_reaction)
    router.add_get(f"{API}/guilds/{{guild_id}}", routes.get_guild)
    router.add_get(f"{API}/guilds/{{guild_id}}/channels", routes.guild_channels)
    router.add_get(f"{API}/guilds/{{guild_id}}/roles", routes.guild_roles)
    router.add_get(f"{API}/guilds/{{guild_id}}/members/{{user_id}}", routes.get_member)


def reaction_event(state: FakeState, message: MessageRecord, emoji: str, user_id: int) -> dict[str, Any]:
    """MESSAGE_REACTION_ADD/REMOVE data (discord.py needs ``type``, and ``member.flags``)."""
    data: dict[str, Any] = {
        "user_id": str(user_id),
        "channel_id": str(message.channel_id),
        "message_id": str(message.id),
        "message_author_id": str(message.author_id),
        "emoji": emoji_payload(emoji),
        "type": 0,
        "burst": False,
        "burst_colors": [],
    }
    if message.guild_id is not None:
        data["guild_id"] = str(message.guild_id)
        if user_id in state.guild(message.guild_id).members:
            data["member"] = state.member_payload(message.guild_id, user_id)
    return data


class ChannelRoutes:
    def __init__(self, api: RestApi) -> None:
        self.api = api
        self.state = api.state

    def _bot_may(self, guild_id: int | None, permission: int, channel_id: int | None = None) -> bool:
        return bool(self.state.permissions(guild_id, self.state.bot.id, channel_id) & permission)

    def _message(self, request: web.Request) -> MessageRecord:
        self.state.channel(request.match_info["channel_id"])
        return self.state.message(request.match_info["channel_id"], request.match_info["message_id"])

    @staticmethod
    def _emoji(request: web.Request) -> str:
        # match_info is already decoded; unquote again for clients that double-encode
        return normalize_emoji(unquote(request.match_info["emoji"]))

    # -- users and DMs --------------------------------------------------------------------------

    async def get_user(self, request: web.Request) -> web.Response:
        return json_response(self.state.user_payload(request.match_info["user_id"]))

    async def open_dm(self, request: web.Request) -> web.Response:
        body, _ = await self.api.body(request)
        user = self.state.user(body["recipient_id"])
        return json_response(self.state.channel_payload(self.state.dm_channel(user.id).id))

    async def my_guilds(self, request: web.Request) -> web.Response:
        """The guilds the bot is in, as partial guilds (``GET /users/@me/guilds``)."""
        bot_id = self.state.bot.id
        mine = [g for g in self.state.guilds.values() if bot_id in g.members]
        return json_response(
            [
                {
                    "id": str(g.id),
                    "name": g.name,
                    "icon": None,
                    "banner": None,
                    "owner": g.owner_id == bot_id,
                    "permissions": str(g.permissions_of(bot_id)),
                    "features": [],
                }
                for g in mine
            ]
        )

    # -- channels and messages --------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self.state.channel_payload(self.state.channel(request.match_info["channel_id"]).id))

    async def typing(self, request: web.Request) -> web.Response:
        self.state.channel(request.match_info["channel_id"])
        return no_content()

    async def history(self, request: web.Request) -> web.Response:
        channel = self.state.channel(request.match_info["channel_id"])
        query = request.query
        messages = [m for m in self.state.channel_messages[channel.id] if not m.deleted and not m.ephemeral]
        if "before" in query:
            messages = [m for m in messages if m.id < int(query["before"])]
        if "after" in query:
            messages = [m for m in messages if m.id > int(query["after"])]
        limit = min(int(query.get("limit", 50)), 100)
        window = messages[:limit] if "after" in query else messages[-limit:]
        return json_response([self.state.message_payload(m) for m in reversed(window)])  # newest first

    async def send(self, request: web.Request) -> web.Response:
        body, files = await self.api.body(request)  # read first, so even a refused request records its files
        channel = self.state.channel(request.match_info["channel_id"])
        if not self._bot_may(channel.guild_id, VIEW_CHANNEL, channel.id):
            raise ApiError(403, "Missing Access", 50001)
        if not self._bot_may(channel.guild_id, SEND_MESSAGES, channel.id) or (
            files and not self._bot_may(channel.guild_id, ATTACH_FILES, channel.id)
        ):
            raise ApiError(403, "Missing Permissions", 50013)
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            # Like Discord: the same nonce from the same author within a few minutes answers the
            # message it made then, and makes no second one.
            earlier = self.state.nonce_message(channel.id, self.state.bot.id, str(body["nonce"]))
            if earlier is not None:
                request[RECORD].note = "nonce seen: existing message"
                return json_response(self.state.message_payload(earlier))
        reply = body.get("message_reference") is not None
        message = self.state.create_message(
            channel.id, self.state.bot.id, body, files, via=f"{request.method} {request.path}", type=19 if reply else 0
        )
        await self.api.emit_message("MESSAGE_CREATE", message)
        return json_response(self.state.message_payload(message))

    async def get_message(self, request: web.Request) -> web.Response:
        return json_response(self.state.message_payload(self._message(request)))

    async def edit(self, request: web.Request) -> web.Response:
        message = self._message(request)
        body, files = await self.api.body(request)
        if message.author_id != self.state.bot.id:
            raise ApiError(403, "Cannot edit a message authored by another user", 50005)
        self.state.edit_message(message, body, files, via=f"{request.method} {request.path}")
        await self.api.emit_message("MESSAGE_UPDATE", message)
        return json_response(self.state.message_payload(message))

    async def delete(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message.author_id != self.state.bot.id and not self._bot_may(message.guild_id, MANAGE_MESSAGES):
            raise ApiError(403, "Missing Permissions", 50013)
        self.state.delete_message(message)
        await self.api.emit_deleted(message)
        return no_content()

    # -- reactions --------------------------------------------------------------------------------

    async def reaction_users(self, request: web.Request) -> web.Response:
        users = self._message(request).reactions.get(self._emoji(request), [])
        return json_response([self.state.user_payload(u) for u in users])

    async def add_reaction(self, request: web.Request) -> web.Response:
        message = self._message(request)
        emoji = self._emoji(request)
        users = message.reactions.setdefault(emoji, [])
        if self.state.bot.id not in users:
            users.append(self.state.bot.id)
            await self.api.gateway.dispatch(
                "MESSAGE_REACTION_ADD", reaction_event(self.state, message, emoji, self.state.bot.id)
            )
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.Response:
        message = self._message(request)
        emoji = self._emoji(request)
        raw_user = request.match_info["user_id"]
        user_id = self.state.bot.id if raw_user == "@me" else int(raw_user)
        if user_id != self.state.bot.id and not self._bot_may(message.guild_id, MANAGE_MESSAGES):
            raise ApiError(403, "Missing Permissions", 50013)
        users = message.reactions.get(emoji, [])
        if user_id in users:
            users.remove(user_id)
            data = reaction_event(self.state, message, emoji, user_id)
            data.pop("member", None)
            await self.api.gateway.dispatch("MESSAGE_REACTION_REMOVE", data)
        return no_content()

    # -- guilds -----------------------------------------------------------------------------------

    async def get_guild(self, request: web.Request) -> web.Response:
        payload = self.state.guild_payload(self.state.guild(request.match_info["guild_id"]).id)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large"):
            payload.pop(key, None)
        payload["approximate_member_count"] = payload.pop("member_count")
        return json_response(payload)

    async def guild_channels(self, request: web.Request) -> web.Response:
        guild = self.state.guild(request.match_info["guild_id"])
        return json_response([self.state.channel_payload(c) for c in guild.channels])

    async def guild_roles(self, request: web.Request) -> web.Response:
        guild = self.state.guild(request.match_info["guild_id"])
        return json_response([r.payload() for r in guild.roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self.state.guild(request.match_info["guild_id"])
        user_id = int(request.match_info["user_id"])
        if user_id not in guild.members:
            raise ApiError(404, "Unknown Member", 10007)
        return json_response(self.state.member_payload(guild.id, user_id))

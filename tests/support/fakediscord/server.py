"""The fake's HTTP side: the aiohttp app, its middleware (request log, injected 429s, upload
limit, auth) and the REST v10 routes for login, command sync, interactions and webhooks.

Channel, message, reaction and guild routes live in ``channels.py``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import openapi
from .errors import ApiError, unknown
from .interactions import check_autocomplete_answer
from .models import EPHEMERAL, LOADING, CallbackRecord, InteractionRecord, MessageRecord, RequestRecord, SyncRecord
from .wire import drain, json_response, no_content, parse_multipart, rate_limited

if TYPE_CHECKING:
    from .fake import FakeDiscord

log = logging.getLogger(__name__)

API = "/api/v10"
CLIENT_MAX_SIZE = 100 * 1024 * 1024
_NO_AUTH = re.compile(rf"^{API}/(interactions/\d+/[^/]+/callback|webhooks/\d+/[^/]+)")
# aiohttp >= 3.12 wants typed keys for request storage; older ones take a plain string.
RECORD = web.RequestKey("fakediscord_record", RequestRecord) if hasattr(web, "RequestKey") else "fakediscord_record"


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.state = fake.state
        self.gateway = fake.gateway

    def build_app(self) -> web.Application:
        from .channels import add_channel_routes

        app = web.Application(middlewares=[self.middleware], client_max_size=CLIENT_MAX_SIZE)
        r = app.router
        r.add_get("/gateway", self.gateway.handle)
        r.add_get("/gateway-resume", self.gateway.handle)
        r.add_get("/attachments/{attachment_id}/{filename}", self.get_attachment)
        r.add_get(f"{API}/gateway", self.get_gateway)
        r.add_get(f"{API}/gateway/bot", self.get_gateway)
        r.add_get(f"{API}/users/@me", self.get_me)
        r.add_get(f"{API}/oauth2/applications/@me", self.get_application)
        r.add_get(f"{API}/applications/@me", self.get_application)
        r.add_get(f"{API}/applications/{{app}}/commands", self.get_commands)
        r.add_put(f"{API}/applications/{{app}}/commands", self.put_commands)
        r.add_get(f"{API}/applications/{{app}}/guilds/{{guild_id}}/commands", self.get_commands)
        r.add_put(f"{API}/applications/{{app}}/guilds/{{guild_id}}/commands", self.put_commands)
        r.add_post(f"{API}/interactions/{{interaction_id}}/{{token}}/callback", self.callback)
        r.add_post(f"{API}/webhooks/{{app}}/{{token}}", self.followup)
        r.add_route("*", f"{API}/webhooks/{{app}}/{{token}}/messages/{{message_id}}", self.webhook_message)
        add_channel_routes(self, r)
        return app

    # -- middleware -----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=dict(request.query),
            started=time.monotonic(),
        )
        self.state.requests.append(record)
        request[RECORD] = record
        try:
            response = await self._guarded(request, handler, record)
        except ApiError as exc:
            response = json_response(exc.body, exc.status)
        except web.HTTPException as exc:
            record.note = record.note or ("no route" if exc.status in (404, 405) else exc.reason)
            response = json_response({"message": f"{exc.status}: {exc.reason}", "code": 0}, exc.status)
        except Exception as exc:  # a bug in the fake: answer 400, not 500 (discord.py retries 5xx for ~25 s)
            log.exception("fakediscord failed on %s %s", request.method, request.path)
            self.fake.errors.append(f"{request.method} {request.path}: {exc!r}")
            record.note = "fake error"
            response = json_response({"message": f"fakediscord error: {exc!r}", "code": 0}, 400)
        record.status = response.status
        record.finished = time.monotonic()
        self.fake.notify()
        return response

    async def _guarded(self, request: web.Request, handler, record: RequestRecord) -> web.StreamResponse:
        for rule in self.fake.faults:
            if rule.matches(request.method, request.path):
                rule.remaining -= 1
                rule.hits += 1
                record.note = "injected 429"
                await drain(request)
                return rate_limited(rule.retry_after, rule.global_, f"{rule.method} {rule.pattern.pattern}")
        if request.body_exists:
            limit = self.fake.upload_limit
            too_large = request.content_length is not None and request.content_length > limit
            if not too_large:
                too_large = len(await request.read()) > limit
            if too_large:
                record.note = "upload limit"
                await drain(request)
                raise ApiError(413, "Request entity too large", 40005)
        if request.path.startswith(API) and not _NO_AUTH.match(request.path):
            if request.headers.get("Authorization") != f"Bot {self.fake.token}":
                raise ApiError(401, "401: Unauthorized", 0)
        return await handler(request)

    async def body(self, request: web.Request) -> tuple[dict[str, Any], list]:
        """The request's JSON (or ``payload_json``) and its uploads as AttachmentRecords."""
        record: RequestRecord = request[RECORD]
        raw = await request.read() if request.body_exists else b""
        if request.content_type.startswith("multipart/"):
            payload, parts = parse_multipart(raw, request.headers["Content-Type"])
        else:
            payload, parts = (json.loads(raw) if raw else {}), []
        files = [self.state.new_attachment(name, data, ctype) for _, name, ctype, data in parts]
        record.json = payload
        errors = openapi.check(request.method, request.path, request.content_type, payload)
        if errors is not None:
            record.note = "invalid form body (OpenAPI)"
            raise ApiError(400, "Invalid Form Body", 50035, errors)
        record.files = [(f.filename, f.size) for f in files]
        return payload, files

    # -- login, gateway discovery, files ----------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        bot = self.state.bot
        return json_response(
            {**bot.payload(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}
        )

    async def get_application(self, request: web.Request) -> web.Response:
        bot = self.state.bot
        return json_response(
            {
                "id": str(bot.id),
                "name": bot.name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.state.user_payload(self.state.owner.id),
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
                "summary": "",
                "interactions_endpoint_url": None,
                "bot": bot.payload(),
            }
        )

    async def get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.fake.gateway_url, "shards": self.fake.shards, "session_start_limit": limit})

    async def get_attachment(self, request: web.Request) -> web.Response:
        attachment = self.state.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            raise web.HTTPNotFound()
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    # -- application commands ------------------------------------------------------------------

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.state.bot.id):
            raise unknown("Application", 10002)

    async def get_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        guild_id = request.match_info.get("guild_id")
        return json_response(self.state.commands.get(int(guild_id) if guild_id else None, []))

    async def put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite: keeps ids of commands that stay (same name and type), like Discord."""
        self._check_app(request)
        guild_id = request.match_info.get("guild_id")
        scope = int(guild_id) if guild_id else None
        if scope is not None:
            self.state.guild(scope)
        body, _ = await self.body(request)
        old = {(c["name"], c.get("type", 1)): c for c in self.state.commands.get(scope, [])}
        synced = []
        for command in body:
            previous = old.get((command["name"], command.get("type", 1)))
            item = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **command,
                "id": previous["id"] if previous else str(self.state.next_id()),
                "application_id": str(self.state.bot.id),
                "version": str(self.state.next_id()),
            }
            if item["default_member_permissions"] is not None:  # Discord answers it as a string
                item["default_member_permissions"] = str(int(item["default_member_permissions"]))
            if scope is not None:
                item["guild_id"] = str(scope)
            synced.append(item)
        self.state.commands[scope] = synced
        self.state.syncs.append(SyncRecord(guild_id=scope, commands=synced))
        return json_response(synced)

    # -- interactions --------------------------------------------------------------------------

    def _interaction(self, interaction_id: str, token: str) -> InteractionRecord:
        try:
            record = self.state.interactions[int(interaction_id)]
        except (KeyError, ValueError):
            raise unknown("interaction", 10062) from None
        if record.token != token:
            raise unknown("interaction", 10062)
        return record

    def _by_token(self, request: web.Request) -> InteractionRecord:
        if request.match_info["app"] != str(self.state.bot.id):
            raise unknown("Webhook", 10015)
        for record in self.state.interactions.values():
            if record.token == request.match_info["token"]:
                return record
        raise unknown("Webhook", 10015)

    async def callback(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request.match_info["interaction_id"], request.match_info["token"])
        deadline = self.fake.interaction_deadline
        if not interaction.callbacks and deadline and time.monotonic() - interaction.created_at > deadline:
            raise unknown("interaction", 10062)  # not answered within 3 s: Discord forgets the token
        if interaction.callbacks:
            raise ApiError(400, "Interaction has already been acknowledged.", 40060)
        body, files = await self.body(request)
        kind, data = int(body["type"]), body.get("data") or {}
        via = f"{request.method} {request.path} type {kind}"
        if (interaction.type == 4) != (kind == 8):  # autocomplete is answered with choices, and only it
            raise ApiError(400, "Interaction callback type is not valid for this interaction.", 50035)
        if kind == 8:
            try:
                check_autocomplete_answer(data)
            except ValueError as err:
                raise ApiError(400, f"Invalid Form Body: {err}", 50035) from None
        message: MessageRecord | None = None
        if kind in (4, 5):
            fields = data if kind == 4 else {"flags": data.get("flags", 0)}
            message = self.state.create_message(
                interaction.channel_id,
                self.state.bot.id,
                fields,
                files if kind == 4 else [],
                via=via,
                type=20 if interaction.type == 2 else 0,
                webhook_id=self.state.bot.id,
                interaction_id=interaction.id,
                extra_flags=LOADING if kind == 5 else 0,
            )
            interaction.original = message
            await self.emit_message("MESSAGE_CREATE", message)
        elif kind in (6, 7) and interaction.message_id is not None:
            message = self.state.message(None, interaction.message_id)
            interaction.original = message
            if kind == 7:
                self.state.edit_message(message, data, files, via=via)
                await self.emit_message("MESSAGE_UPDATE", message)
        interaction.callbacks.append(CallbackRecord(type=kind, data=data, attachments=files))
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            }
        }
        if message is not None:
            answer["interaction"]["response_message_id"] = str(message.id)
            answer["resource"] = {"type": kind, "message": self.state.message_payload(message)}
        return json_response(answer)

    async def followup(self, request: web.Request) -> web.Response:
        interaction = self._by_token(request)
        if not interaction.callbacks:
            raise unknown("Webhook", 10015)  # followups need an initial response first
        body, files = await self.body(request)
        loading = interaction.original
        if loading is not None and loading.flags & LOADING and not loading.deleted:
            # Like Discord: the first followup after a "thinking" defer fills in that message,
            # keeping its id and the defer's ephemerality (the followup's own flag is ignored).
            fields = {k: v for k, v in body.items() if k != "flags"}
            self.state.edit_message(loading, fields, files, via=f"{request.method} {request.path}")
            interaction.followups.append(loading)
            await self.emit_message("MESSAGE_UPDATE", loading)
            return json_response(self.state.message_payload(loading))
        message = self.state.create_message(
            interaction.channel_id,
            self.state.bot.id,
            body,
            files,
            via=f"{request.method} {request.path}",
            type=20 if interaction.type == 2 else 0,
            webhook_id=self.state.bot.id,
            interaction_id=interaction.id,
        )
        interaction.followups.append(message)
        await self.emit_message("MESSAGE_CREATE", message)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(self.state.message_payload(message))
        return no_content()

    async def webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._by_token(request)
        message_id = request.match_info["message_id"]
        if message_id == "@original":
            message = interaction.original
        else:
            message = next(
                (m for m in [interaction.original, *interaction.followups] if m and str(m.id) == message_id), None
            )
        if message is None or message.deleted:
            raise unknown("Message", 10008)
        if request.method == "GET":
            return json_response(self.state.message_payload(message))
        if request.method == "PATCH":
            body, files = await self.body(request)
            self.state.edit_message(message, body, files, via=f"{request.method} {request.path}")
            await self.emit_message("MESSAGE_UPDATE", message)
            return json_response(self.state.message_payload(message))
        if request.method == "DELETE":
            self.state.delete_message(message)
            await self.emit_deleted(message)
            return no_content()
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "PATCH", "DELETE"])

    # -- gateway events for REST changes ---------------------------------------------------------

    async def emit_message(self, event: str, message: MessageRecord) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE for a message made or changed over REST (not for
        ephemeral ones, which Discord never sends to the bot)."""
        if message.ephemeral:
            return
        payload = self.state.message_payload(message)
        author_is_user = message.webhook_id is None
        if message.guild_id is not None and author_is_user:
            member = self.state.member_payload(message.guild_id, message.author_id)
            payload["member"] = {k: v for k, v in member.items() if k != "user"}
        await self.gateway.dispatch(event, payload)

    async def emit_deleted(self, message: MessageRecord) -> None:
        if message.ephemeral:
            return
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE", data)

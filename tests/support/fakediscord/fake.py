"""``FakeDiscord``: the object tests hold. It starts the server and gateway, waits for what the
bot does and answers questions about it. Building the world (``world.py``), driving the bot
(``driving.py``) and injecting faults (``faults.py``) are mixed in from their own modules."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .driving import Driving
from .faults import Faults
from .gateway import Gateway
from .interactions import find_command
from .models import FaultRule, InteractionRecord, MessageRecord, RequestRecord, SyncRecord
from .server import RestApi
from .state import FakeState
from .world import WorldBuilding

MiB = 1024 * 1024


class FakeDiscord(WorldBuilding, Driving, Faults):
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
        #: How many shards ``GET /gateway/bot`` tells the bot to connect.
        self.shards = 1
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

"""The fake gateway: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME with replay,
op 7 (reconnect) and op 9 (invalid session), and dispatch of events with sequence numbers.

Shards: IDENTIFY's ``shard`` ``[id, count]`` (``[0, 1]`` when absent) gives a session the guilds
whose shard is ``id``, Discord's rule ``(guild_id >> 22) % count`` (DMs: shard 0). READY lists and
GUILD_CREATE announces only those, and each event goes to the newest session of the guild's shard
(kept for replay while its client is away, like any session's).

Frames go out as plain JSON text, which discord.py accepts whatever compression it asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import FakeState

log = logging.getLogger(__name__)

# Gateway intents the fake honours when choosing which events a session gets.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15

_GUILD_INTENT = {
    "GUILD_CREATE": GUILDS,
    "GUILD_DELETE": GUILDS,
    "MESSAGE_CREATE": GUILD_MESSAGES,
    "MESSAGE_UPDATE": GUILD_MESSAGES,
    "MESSAGE_DELETE": GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": GUILD_MESSAGE_REACTIONS,
}
_DM_INTENT = {
    "MESSAGE_CREATE": DIRECT_MESSAGES,
    "MESSAGE_UPDATE": DIRECT_MESSAGES,
    "MESSAGE_DELETE": DIRECT_MESSAGES,
    "MESSAGE_REACTION_ADD": DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": DIRECT_MESSAGE_REACTIONS,
}


@dataclass
class Session:
    id: str
    intents: int
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for replay
    ws: web.WebSocketResponse | None = None  # None while the client is away
    invalid: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    shard: tuple[int, int] = (0, 1)  # (id, count), from IDENTIFY
    active: int = 0  # when it last identified or resumed (a counter): the newest session of a shard gets its events

    def owns(self, guild_id: int | None) -> bool:
        shard_id, count = self.shard
        return ((guild_id or 0) >> 22) % count == shard_id


@dataclass
class Connection:
    """One websocket the client opened."""

    path: str
    query: dict[str, str]
    opened: float = field(default_factory=time.monotonic)
    hello: str = ""  # "identify" or "resume"
    closed: float | None = None
    close_code: int | None = None


class Gateway:
    def __init__(self, state: FakeState, token: str, *, heartbeat_interval_ms: int = 41250) -> None:
        self.state = state
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.resume_url = ""  # set by FakeDiscord.start()
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None
        self.connections: list[Connection] = []
        self.received: list[dict[str, Any]] = []  # every frame from the client, heartbeats aside
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self._activity = 0
        self._ready = asyncio.Event()
        self._resume_gate = asyncio.Event()
        self._resume_gate.set()
        #: Called after every change worth waking a waiter for (FakeDiscord sets it).
        self.on_change: Callable[[], None] | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    # -- the websocket -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(path=request.path, query=dict(request.query))
        self.connections.append(conn)
        self._sockets.add(ws)
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(ws, conn, json.loads(msg.data))
        finally:
            self._sockets.discard(ws)
            conn.closed = time.monotonic()
            conn.close_code = ws.close_code
            for session in self.sessions.values():
                if session.ws is ws:
                    session.ws = None
            self._notify()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, conn: Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            self.heartbeats += 1
            await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
            return
        self.received.append(frame)
        if op == 2:
            conn.hello = "identify"
            await self._identify(ws, data)
        elif op == 6:
            conn.hello = "resume"
            await self._resume(ws, data)
        elif op == 8:
            await self._request_members(data)
        else:
            log.debug("fake gateway ignores op %s", op)

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        session = Session(id=secrets.token_hex(16), intents=int(data.get("intents") or 0), shard=tuple(shard))
        self.sessions[session.id] = session
        self._activate(session)
        state = self.state
        guilds = [guild_id for guild_id in state.guilds if session.owns(guild_id)]
        ready = {
            "v": 10,
            "user": {**state.user_payload(state.bot.id), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "shard": list(session.shard),
            "application": {"id": str(state.bot.id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "_trace": ["fakediscord"],
        }
        async with session.lock:
            session.ws = ws
            await self._emit(session, "READY", ready)
            for guild_id in guilds:
                all_members = bool(session.intents & GUILD_MEMBERS)
                guild = state.guild_payload(guild_id, unavailable=False, all_members=all_members)
                await self._emit(session, "GUILD_CREATE", guild)
        self.identifies += 1
        self._ready.set()
        self._notify()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id") or "")
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if session is None or session.invalid:
            await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
            return
        await self._resume_gate.wait()
        seen = data.get("seq") or 0
        async with session.lock:
            for frame in session.frames:
                if frame["s"] > seen:
                    await self._send(ws, self._visible(session, frame))
            session.ws = ws
            await self._emit(session, "RESUMED", {"_trace": ["fakediscord"]})
        self._activate(session)
        self.resumes += 1
        self._notify()

    async def _request_members(self, data: dict[str, Any]) -> None:
        """op 8: answer with every member in one chunk."""
        guild = self.state.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [self.state.member_payload(guild.id, u) for u in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # -- sending -------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send an event to the newest session of its guild's shard (or keep it for replay while the
        client is away). Returns its sequence number, or None when no session wants it (intents)."""
        session = self.session_for(int(data.get("guild_id") or 0) or None)
        if session is None or session.invalid:
            return None
        needed = (_GUILD_INTENT if data.get("guild_id") else _DM_INTENT).get(event, 0)
        if needed and not session.intents & needed:
            return None
        async with session.lock:
            return await self._emit(session, event, data)

    def session_for(self, guild_id: int | None) -> Session | None:
        """The newest session (identified or resumed last) whose shard owns ``guild_id`` (``None``: a DM)."""
        owners = [session for session in self.sessions.values() if session.owns(guild_id)]
        return max(owners, key=lambda session: session.active, default=None)

    def _activate(self, session: Session) -> None:
        self._activity += 1
        session.active = self._activity
        self.current = session

    async def _emit(self, session: Session, event: str, data: dict[str, Any]) -> int:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None:
            await self._send(session.ws, self._visible(session, frame))
        return session.seq

    def _visible(self, session: Session, frame: dict[str, Any]) -> dict[str, Any]:
        """Without the MESSAGE_CONTENT intent, other users' guild messages arrive blank."""
        data = frame["d"]
        if frame["t"] not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.intents & MESSAGE_CONTENT:
            return frame
        bot_id = str(self.state.bot.id)
        author = data.get("author", {}).get("id")
        mentioned = any(m.get("id") == bot_id for m in data.get("mentions", []))
        if author == bot_id or not data.get("guild_id") or mentioned:
            return frame
        blank = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        return {**frame, "d": blank}

    async def _send(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(frame))
        except (ConnectionError, RuntimeError):
            log.debug("fake gateway: send on a closing socket dropped")

    # -- driving -------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def send_reconnect(self) -> Session:
        """op 7: the client must resume; until it does, events are kept for replay."""
        session = self._live_session()
        async with session.lock:
            ws, session.ws = session.ws, None
            await self._send(ws, {"op": 7, "d": None, "s": None, "t": None})
        return session

    async def send_invalid_session(self) -> None:
        """op 9 ``d: false``: the session is gone; the client must IDENTIFY again."""
        session = self._live_session()
        async with session.lock:
            ws, session.ws = session.ws, None
            session.invalid = True
            self._ready.clear()
            await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})

    def hold_resumes(self) -> None:
        self._resume_gate.clear()

    def release_resumes(self) -> None:
        self._resume_gate.set()

    async def close_all(self) -> None:
        self.release_resumes()
        for ws in list(self._sockets):
            await ws.close(code=1001)

    def _live_session(self) -> Session:
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("fake gateway: no client is connected")
        return session

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

"""Faults a test injects: 429s on REST routes, a permission denied or a channel deleted under the
bot, and gateway reconnects (op 7, held resumes) and invalid sessions (op 9).

:class:`Faults` is mixed into :class:`~.fake.FakeDiscord`; it uses its ``state``, ``gateway``,
``faults``, ``bot_id``, ``notify`` and ``wait_for``. (The upload limit and the interaction deadline are plain
attributes of ``FakeDiscord``, checked by the server.)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from .models import FaultRule


class Faults:
    """``fake.inject_429(...)``, ``await fake.deny(...)``, ``await fake.reconnect()`` and the like."""

    def inject_429(
        self, method: str, path_regex: str, count: int = 1, retry_after: float = 0.5, global_: bool = False
    ) -> FaultRule:
        """Answer the next ``count`` requests whose method matches (``"*"``: any) and whose
        decoded path matches ``path_regex`` (re.search) with a 429. ``rule.hits`` counts them."""
        rule = FaultRule(method.upper() if method != "*" else "*", re.compile(path_regex), count, retry_after, global_)
        self.faults.append(rule)
        return rule

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

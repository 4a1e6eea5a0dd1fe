"""``animabot run``: the bot and (by default) the engine runtime in one process.

:func:`start_bot` is the whole start-up path: the CLI runs it under :func:`run`, and tests run it
inside their own event loop against a loopback Discord. :meth:`Running.stop` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import discord

from bot.client import AnimaBot
from engine.config import Config
from engine.errors import UserError
from engine.store.store import JobStore, open_store

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
# While Discord cannot be reached at start: the first wait before trying again, doubled at each try
# up to the most (tests make the first one short).
RETRY_FIRST_SECONDS = 1.0
RETRY_MOST_SECONDS = 60.0
REJECTED_TOKEN = "Discord rejected the bot token; check DISCORD_TOKEN or the config file."


@dataclass(eq=False)
class Running:
    """A started bot, with what ``start_bot`` created for it (and so must close)."""

    bot: AnimaBot
    connection: asyncio.Task
    owns_store: bool = False
    owns_runtime: bool = False
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        """Close the gateway and HTTP session, stop the runtime (re-queuing its jobs), close the store."""
        if self._stopped:
            return
        self._stopped = True
        bot = self.bot
        await bot.close()
        self.connection.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.connection
        if self.owns_runtime and bot.runtime is not None:
            await bot.runtime.stop()
        if self.owns_store:
            await bot.store.close()
        log.info("bot stopped")


async def start_bot(
    config: Config,
    *,
    store: JobStore | None = None,
    runtime=None,
    with_runtime: bool = True,
    ready_timeout: float = READY_TIMEOUT,
    **bot_options,
) -> Running:
    """Open the store, start the runtime, log in and wait until the gateway is ready.

    A ``store`` or ``runtime`` passed in is used and left open by :meth:`Running.stop`; without
    them both are created here (``with_runtime=False`` runs the bot alone, for a separate
    ``animabot worker``). ``bot_options`` go to :class:`AnimaBot` (e.g. ``guild_ready_timeout``).
    """
    token = config.discord.token
    if not token:
        raise UserError("No Discord bot token: set DISCORD_TOKEN or token in the [discord] section of the config.")
    owns_store = store is None
    if store is None:
        store = await open_store(config)
    owns_runtime = False
    try:
        if runtime is None and with_runtime:
            from engine.runtime.worker import Runtime

            runtime = Runtime(config, store)
            await runtime.start()
            owns_runtime = True
        bot = await log_in(lambda: AnimaBot(config, store, runtime, **bot_options), token, config.discord.api_base)
        connection = None
        try:
            connection = asyncio.create_task(bot.connect(reconnect=True), name="animabot-gateway")
            await wait_ready(bot, connection, ready_timeout)
        except BaseException:
            await bot.close()
            if connection is not None:
                connection.cancel()
                await asyncio.gather(connection, return_exceptions=True)
            raise
        return Running(bot, connection, owns_store=owns_store, owns_runtime=owns_runtime)
    except BaseException:
        if owns_runtime:
            await runtime.stop()
        if owns_store:
            await store.close()
        raise


async def log_in(make_bot: Callable[[], AnimaBot], token: str, api_base: str) -> AnimaBot:
    """A bot from ``make_bot()``, logged in (its ``setup_hook`` run).

    While Discord cannot be reached (connection refused, no DNS answer) it tries again with a fresh
    bot, for ever, after a wait that starts at ``RETRY_FIRST_SECONDS`` and doubles up to
    ``RETRY_MOST_SECONDS``, with one warning per try. A token Discord rejects is a ``UserError`` at once.
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        bot = make_bot()
        try:
            await bot.login(token)
            return bot
        except (aiohttp.ClientConnectionError, OSError) as err:
            await bot.close()
            log.warning("Discord cannot be reached at %s (%s); trying again in %g s", api_base, err, delay)
        except discord.LoginFailure:
            await bot.close()
            raise UserError(REJECTED_TOKEN) from None
        except BaseException:
            await bot.close()
            raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MOST_SECONDS)


async def wait_ready(bot: AnimaBot, connection: asyncio.Task, timeout: float) -> None:
    """Return once the gateway is ready; raise what ended the connection, or a ``UserError`` when it is
    not ready within ``timeout`` seconds (Discord's API answered, its gateway did not)."""
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({ready, connection}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if ready in done:
        return
    if connection in done:
        connection.result()  # raises what ended it
        raise ConnectionError("the Discord gateway connection ended before it was ready")
    raise UserError(
        f"Discord accepted the token but its gateway was not ready within {timeout:g} s; "
        "check that this host can open WebSocket connections to Discord, then start the bot again."
    )


async def main(config: Config, *, with_runtime: bool = True) -> None:
    running = await start_bot(config, with_runtime=with_runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopping, running.connection}, return_when=asyncio.FIRST_COMPLETED)
        if running.connection.done() and not running.connection.cancelled() and running.connection.exception():
            raise running.connection.exception()
    finally:
        stopping.cancel()
        await running.stop()


def run(config: Config, *, with_runtime: bool = True) -> int:
    """``animabot run``: returns the process exit status (a ``UserError`` is raised, for the CLI to
    print). ``with_runtime=False`` runs the bot alone, for a host whose GPU side runs as ``animabot worker``."""
    if not logging.getLogger().handlers:
        discord.utils.setup_logging(level=logging.INFO)
    try:
        asyncio.run(main(config, with_runtime=with_runtime))
    except KeyboardInterrupt:
        pass
    return 0  # a UserError (a store that cannot be opened, a rejected token) reaches the CLI's one handler

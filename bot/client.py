"""The Discord client: settings, store and runtime are passed in; cogs do the rest.

The bot builds the helpers its cogs share, each from what it uses: the job actions
(``bot.actions.JobActions``), the result poster (``bot.delivery.results.ResultPoster``) and the
progress watcher (``bot.delivery.progress``). Only the cogs (and the command line that starts the
bot) know :class:`AnimaBot`; a helper gets the store, the config, the HTTP session or the Discord
client, whichever it uses (``tests/bot/test_bot_imports.py`` keeps it so).

``setup_hook`` opens the bot's one HTTP session for downloads (``close`` closes it), loads one cog
per concern, registers the persistent buttons (one ``DynamicItem`` template carrying the action and
the job id, so buttons on old messages work after a restart), syncs the slash commands and starts
the progress watcher. Only non-privileged intents are used.

The bot is sharded (``AutoShardedBot``): as many gateway shards as Discord's ``/gateway/bot`` says, or
``[discord] shard_count``. With ``shard_ids`` one process connects only those shards, and its progress
watcher follows and delivers only the jobs of their guilds (:func:`shards_of`); the other processes on
the same store serve the rest, and a job whose process is away waits in the store until it is back.

Everything a member does ends in one error responder, ``bot.answers.answer_error``: the command
tree's ``on_error`` calls it for slash commands and context menus (refused checks included), the
bot's ``on_error`` for the listeners that handle buttons and forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.actions import JobActions
from bot.answers import answer_error
from bot.checks import Refused
from bot.delivery.progress import ProgressWatcher
from bot.delivery.results import ResultPoster
from bot.job_buttons import JobButton
from bot.ops import BotOps, discord_trace
from bot.replies import NO_MENTIONS
from engine.config import Config, DiscordConfig
from engine.store.reads import Shards
from engine.store.store import JobStore

if TYPE_CHECKING:
    from engine.runtime.worker import Runtime

log = logging.getLogger(__name__)

COGS = (
    "bot.cogs.animate",
    "bot.cogs.animate_picture",
    "bot.cogs.mux",
    "bot.cogs.queue",
    "bot.cogs.admin",
    "bot.cogs.deliver",
    "bot.cogs.models",
    "bot.cogs.remix",
    "bot.cogs.info",
    "bot.cogs.status",
)


def point_at(settings: DiscordConfig) -> None:
    """Send REST calls to ``api_base`` and open the gateway at ``gateway_url``.

    discord.py has no option for either: every REST URL is ``Route.BASE + path`` and a plain
    ``Client`` connects to ``DiscordWebSocket.DEFAULT_GATEWAY`` (then to READY's resume URL).
    Both are class attributes, so this affects every client in the process.
    """
    discord.http.Route.BASE = settings.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents() -> discord.Intents:
    """Guilds (channels, roles), guild messages (our own messages' events) and reactions."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.guild_messages = True
    chosen.guild_reactions = True
    return chosen


def shards_of(settings: DiscordConfig) -> Shards | None:
    """The shards whose jobs this process follows: ``shard_ids`` of ``shard_count``; ``None`` for all."""
    return Shards(settings.shard_ids, settings.shard_count) if settings.shard_ids else None


class AnimaTree(app_commands.CommandTree):
    """Answers what a slash command or a context menu raised (a refused check included) with
    :func:`bot.answers.answer_error`."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, Refused) and not interaction.response.is_done():
            # Checks run before the command could defer; every command answers the same way on the
            # wire (a private "thinking…", then the text), so a refusal defers first too.
            with contextlib.suppress(discord.HTTPException):  # reply() logs an expired token
                await interaction.response.defer(ephemeral=True, thinking=True)
        command = interaction.command
        if isinstance(command, app_commands.ContextMenu):
            what = f"the {command.name} menu"
        else:
            what = f"/{command.qualified_name}" if command is not None else "a command"
        await answer_error(interaction, error, what)


class AnimaBot(commands.AutoShardedBot):
    def __init__(
        self,
        config: Config,
        store: JobStore,
        runtime: Runtime | None = None,
        *,
        guild_ready_timeout: float = 2.0,
        identify_delay: float = 5.0,
        poll_interval: float = 1.0,
        edit_interval: float = 3.0,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(),
            allowed_mentions=NO_MENTIONS,
            tree_cls=AnimaTree,
            guild_ready_timeout=guild_ready_timeout,
            http_trace=discord_trace(),  # Discord's answers, counted (bot.ops)
            shard_count=config.discord.shard_count or None,  # None: as many as Discord's /gateway/bot says
            shard_ids=list(config.discord.shard_ids) or None,
        )
        self.config = config
        self.store = store
        self.runtime = runtime
        self.identify_delay = identify_delay
        self.session: aiohttp.ClientSession | None = None  # opened in setup_hook, inside the event loop
        self.ops = BotOps(store)  # the bot's metrics: loop lag, gateway latency, the queue read at scrape
        self.actions = JobActions(self, store, config, wake=self.jobs_changed)
        self.poster = ResultPoster(self, store, config)
        self.watcher = ProgressWatcher(
            store,
            self.poster,
            runtime,
            shards=shards_of(config.discord),
            poll_interval=poll_interval,
            edit_interval=edit_interval,
        )
        point_at(config.discord)

    async def setup_hook(self) -> None:
        self.session = aiohttp.ClientSession()
        for name in COGS:
            await self.load_extension(name)
        self.add_dynamic_items(JobButton)
        await self.sync_commands()
        self.watcher.start()
        self.ops.start(self)

    async def sync_commands(self) -> None:
        """Sync to the configured guilds (instant); globally only without them, and only on change."""
        guild_ids = self.config.discord.guild_ids
        if guild_ids:
            for guild_id in guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %d", len(synced), guild_id)
            return
        stamp = self.config.data_dir / "commands.sha256"
        digest = self.command_digest()
        if stamp.exists() and stamp.read_text().strip() == digest:
            log.info("commands unchanged since the last global sync; not syncing")
            return
        synced = await self.tree.sync()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
        log.info("synced %d commands globally (they can take up to an hour to appear)", len(synced))

    def command_digest(self) -> str:
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def jobs_changed(self) -> None:
        """A job was queued or a cancel requested: wake the runtime and the watcher now."""
        if self.runtime is not None:
            self.runtime.notify()
        self.watcher.poke()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before a repeated IDENTIFY (Discord's identify rate limit).
        if not initial and self.identify_delay > 0:
            await asyncio.sleep(self.identify_delay)

    async def on_ready(self) -> None:
        shards = f"shards {sorted(self.shards)} of {self.shard_count}"
        log.info("logged in as %s (%d guilds, %s)", self.user, len(self.guilds), shards)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """A listener failed. One that handled an interaction (a button's ``on_job_reroll``, the
        Remix form's ``on_interaction``) owes the member an answer: :func:`bot.answers.answer_error`."""
        error = sys.exc_info()[1]
        interaction = next((arg for arg in args if isinstance(arg, discord.Interaction)), None)
        if interaction is None or error is None:
            await super().on_error(event_method, *args, **kwargs)
            return
        await answer_error(interaction, error, event_method)

    async def close(self) -> None:
        await self.watcher.stop()
        await self.ops.stop()
        await super().close()
        if self.session is not None:
            await self.session.close()
            self.session = None

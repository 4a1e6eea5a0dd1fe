"""A fake Discord on 127.0.0.1 for end-to-end tests of a real discord.py client.

It speaks enough REST v10 and gateway for ``commands.Bot``: login, command sync, READY and
GUILD_CREATE, heartbeats, RESUME with replay, chat-input and component interactions with their
callbacks, followups and ``@original``, channel messages with multipart files, reactions,
MESSAGE_CREATE/UPDATE/DELETE for what the bot does over REST, and the attachment files
themselves (``GET /attachments/{id}/{filename}``, so ``Attachment.read()`` works). It records
everything for assertions and can inject 429s, an upload limit, op 7 and op 9.

Modules, one concern each
-------------------------
- ``fake``: ``FakeDiscord``, the object tests hold: start and stop, addresses, waiting, and
  reading what happened. It mixes in ``world`` (guilds, roles, channels, users, members),
  ``driving`` (what Discord's users do: slash commands, autocomplete, clicks, message commands,
  modal submits, reactions, messages) and ``faults`` (429s, denied permissions, deleted
  channels, op 7 and op 9).
- ``state``: ``FakeState``, the world's records with lookups that answer like Discord when
  something is missing, and messages made, edited and deleted; ``payloads`` (mixed into it): the
  JSON Discord sends for each record; ``message_body``: what Discord does with a message body
  (its ``attachments`` list, the limits it refuses).
- ``models``: the records (plain dataclasses), permission bits and message flags.
- ``interactions``: INTERACTION_CREATE data as Discord's client builds it from the synced
  commands, refusing what a real user could not send.
- ``server``: the aiohttp app, its middleware (request log, injected 429s, upload limit, auth) and
  the routes for login, command sync, interactions and webhooks; ``channels``: the routes for
  channels, messages, reactions, guilds and users.
- ``gateway``: the websocket (HELLO, IDENTIFY → READY, heartbeats, RESUME with replay, op 7 and
  op 9, dispatch filtered by intents).
- ``wire``: HTTP details (the exact JSON content type, multipart bodies, 429s); ``errors``:
  ``ApiError``, an error answer shaped like Discord's; ``openapi``: every request body checked
  against Discord's OpenAPI description in ``spec/``.

Pointing discord.py at it
-------------------------
discord.py has no option for another host, so two class attributes are patched:
``discord.http.Route.BASE = fake.api_base`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)``.
``point_discord_py_at(fake)`` does both and returns a function that undoes it
(``restore_discord_py()`` puts back discord.com). The bot does the same from its config keys
``api_base`` / ``gateway_url``; a test then passes ``fake.api_base`` and ``fake.gateway_url``.

Test bots should pass ``guild_ready_timeout=0.05`` (on_ready otherwise waits 2 s after the
last GUILD_CREATE) and, for ``fake.invalid_session()``, override
``async def before_identify_hook(self, shard_id, *, initial=False): pass`` (discord.py sleeps
5 s there before a re-IDENTIFY).

Import it as ``from support.fakediscord import FakeDiscord, fake_discord, running_bot`` (pytest puts
``tests/`` on sys.path for the test modules there; don't mix with ``tests.support.fakediscord``, which
would load a second copy). Fixtures (put them in your own test module or conftest)::

    @pytest.fixture
    async def fake():
        async with fake_discord() as fake:        # started, discord.py pointed at it
            yield fake                             # build the world before the bot connects

    @pytest.fixture
    async def world(fake):
        return fake.default_world()               # World(guild_id, channel_id, admin_id, member_id, bot_id, admin_role_id)

    async def test_render(fake, world):
        bot = MyBot(..., guild_ready_timeout=0.05)
        async with running_bot(bot, fake.token):   # login (+ setup_hook/sync), connect, wait_until_ready
            i = await fake.slash("animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id)
            await i.wait_response()                # CallbackRecord(type=5, ...)
            [msg] = await i.wait_followups(1)      # MessageRecord
            assert msg.attachment("out.mp4").data.startswith(b"...")

Driving API (``FakeDiscord``)
-----------------------------
- ``FakeDiscord(token="test-token", *, bot_name="animabot", upload_limit=10 MiB,
  heartbeat_interval_ms=41250, interaction_deadline=3.0)``; ``await start()`` / ``await stop()``
  (or ``async with``); ``api_base``, ``gateway_url``, ``http_base``, ``port``, ``bot_id``
  (== ``application_id``), ``token``; ``shards`` (what ``GET /gateway/bot`` recommends, 1).
- World: ``add_guild(name, *, shard=None) -> id`` (``shard=(id, count)``: an id on that shard),
  ``add_channel(guild_id, name) -> id``,
  ``add_role(guild_id, name, permissions) -> id``, ``add_user(name) -> id``,
  ``add_member(guild_id, user_id=None, name="user", *, permissions=0, roles=()) -> user id``,
  ``default_world() -> World``, ``permissions_of(guild_id, user_id)``. Permission bits are in
  ``fakediscord.models`` (``MANAGE_GUILD`` …). Interactions carry ``member.permissions``
  computed from @everyone + roles (ADMINISTRATOR or owner: all) and ``app_permissions``.
- Drive: ``await slash(name, options, *, user_id, channel_id, guild_id=None, subcommand=None,
  group=None, attachments={"opt": (filename, bytes[, content_type])}, check_permissions=True)
  -> InteractionRecord`` (``name`` may be "limits set"); ``await message_command(name, message_id, *,
  user_id)`` (Apps → name on a message); ``await submit_modal(interaction, {custom_id: value})`` (the
  modal the bot answered with, callback type 9); ``await click(message_id, custom_id,
  *, user_id, values=None)``; ``await react(channel_id, message_id, emoji, *, user_id)``,
  ``await unreact(...)``; ``await user_message(channel_id, content, *, user_id,
  attachments=[(filename, bytes)]) -> MessageRecord``; ``await dispatch(event, data)``.
- Wait: ``await wait_ready()``; ``await wait_for(predicate, timeout=5.0, what=None)`` returns
  the predicate's truthy value; on an InteractionRecord ``wait_response()``,
  ``wait_followups(n)``, ``wait_original(predicate)``.
- Read: ``messages_in(channel_id)``, ``bot_messages(channel_id=None)``, ``message(id)``
  (MessageRecord: content, embeds, components, attachments with ``.data`` bytes and
  ``.filename``, allowed_mentions as sent, flags/``ephemeral``, ``revisions``/``edits`` with
  ``.at`` times, ``reactions`` {emoji: [user ids]}, ``deleted``); ``interactions``
  (``callbacks``, ``response``, ``original``, ``followups``, ``deferred``, ``ephemeral``);
  ``requests(method=None, path=regex)`` (RequestRecord: method, path, status, started,
  finished, json, files, note); ``sync_calls``, ``synced_commands(guild_id=None)``,
  ``command(name, guild_id=None)``; ``errors`` (bugs inside the fake, should stay empty);
  ``gateway.identifies`` / ``resumes`` / ``heartbeats`` / ``connections`` / ``received``.
- Faults: ``inject_429(method, path_regex, count=1, retry_after=0.5, global_=False)``;
  ``upload_limit`` (bytes; over it: 413 ``{"code": 40005}``); ``interaction_deadline`` (first
  callback later than this: 404 ``{"code": 10062}``, like Discord's 3 s); ``await
  reconnect()`` (op 7, waits for RESUMED); ``await deny(channel_id, ATTACH_FILES)`` (a member
  overwrite denying the bot, by default, a permission there: 403 50013/50001 on what needs it);
  ``await delete_channel(channel_id)`` (404 10003 from then on); ``async with while_disconnected(): ...`` (op 7 and
  RESUME held until the block ends: what it dispatches is replayed); ``await
  invalid_session()`` (op 9 ``d:false``, waits for the new IDENTIFY).

Discord behaviours it copies (so a bot that passes here is less surprised in production)
-----------------------------------------------------------------------------------------
- The first followup after a "thinking" defer (callback type 5) fills in the loading message:
  same message id, the defer's ephemerality wins over the followup's own flag. Later followups
  are new messages. Followups before any callback: 404 Unknown Webhook (10015).
- A second callback: 400 (40060). A first callback after ``interaction_deadline``: 404 (10062).
- Ephemeral messages are recorded (``MessageRecord.ephemeral``) but never sent as gateway events.
- Empty messages: 400 (50006); content over 2000 characters, embeds over 6000 together: 400
  (50035, ``BASE_TYPE_MAX_LENGTH`` in the nested ``errors``). A channel message with
  ``enforce_nonce`` and a nonce the bot used there in the last 5 minutes answers that message
  and creates none. Editing another
  user's message: 403 (50005). Sending without SEND_MESSAGES / ATTACH_FILES: 403 (50013).
- Intents are honoured: no message or reaction events without GUILD_MESSAGES /
  GUILD_MESSAGE_REACTIONS (DM ones for DMs); without MESSAGE_CONTENT other users' guild messages
  arrive with empty content, embeds, attachments and components; without GUILD_MEMBERS,
  GUILD_CREATE lists only the bot (``member_count`` stays true).
- ``slash`` refuses what Discord's client would not send (unknown/missing options, wrong
  types, outside min/max, not in choices, a command the member's permissions hide);
  ``click`` refuses a component the message does not have now, or a disabled one.
- Exceptions inside the fake are answered with 400 (never 5xx: discord.py retries those for
  ~25 s) and listed in ``fake.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from .fake import FakeDiscord
from .models import (
    ADMINISTRATOR,
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    MANAGE_GUILD,
    AttachmentRecord,
    CallbackRecord,
    InteractionRecord,
    MessageRecord,
    RequestRecord,
    Revision,
    World,
)

__all__ = [
    "ADMINISTRATOR",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "EPHEMERAL",
    "MANAGE_GUILD",
    "AttachmentRecord",
    "CallbackRecord",
    "FakeDiscord",
    "InteractionRecord",
    "MessageRecord",
    "RequestRecord",
    "Revision",
    "World",
    "fake_discord",
    "point_discord_py_at",
    "restore_discord_py",
    "running_bot",
]

_DISCORD_API_BASE = "https://discord.com/api/v10"
_DISCORD_GATEWAY = "wss://gateway.discord.gg/"


def point_discord_py_at(
    fake: FakeDiscord | None = None, *, api_base: str | None = None, gateway_url: str | None = None
) -> Callable[[], None]:
    """Make discord.py talk to ``fake`` (or to the given URLs); returns the undo."""
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    api_base = api_base or fake.api_base
    gateway_url = gateway_url or fake.gateway_url
    previous = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = previous

    return restore


def restore_discord_py() -> None:
    """Point discord.py back at discord.com."""
    point_discord_py_at(api_base=_DISCORD_API_BASE, gateway_url=_DISCORD_GATEWAY)


@contextlib.asynccontextmanager
async def fake_discord(**kwargs: Any) -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with discord.py pointed at it; both undone on exit."""
    fake = FakeDiscord(**kwargs)
    await fake.start()
    restore = point_discord_py_at(fake)
    try:
        yield fake
    finally:
        restore()
        await fake.stop()


@contextlib.asynccontextmanager
async def running_bot(bot: Any, token: str = "test-token", timeout: float = 10.0) -> AsyncIterator[Any]:
    """Log ``bot`` in (which runs its ``setup_hook``), connect it, wait for on_ready, and close
    it on exit. A connect failure (bad token, …) is raised here instead of hanging."""
    await bot.login(token)
    runner = asyncio.create_task(bot.connect(), name="fakediscord bot.connect")
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({runner, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()
            raise RuntimeError("bot.connect() returned before the bot was ready")
        if ready not in done:
            raise TimeoutError(f"bot not ready after {timeout}s (is guild_ready_timeout small?)")
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

"""The fake Discord's shards (issue 23), proved against discord.py's ``AutoShardedClient``: ``GET /gateway/bot``
recommends ``fake.shards``, IDENTIFY's ``shard`` gives a session only its guilds, and each guild's events
reach only the client whose shard owns it."""

from __future__ import annotations

import contextlib

import discord
import pytest
from support.fakediscord import FakeDiscord, fake_discord, running_bot


class Sharded(discord.AutoShardedClient):
    def __init__(self, **options) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_reactions = intents.guild_messages = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, **options)
        self.reactions: list[int] = []  # the guild of each reaction seen

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s between IDENTIFYs of its shards

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.reactions.append(payload.guild_id)


@pytest.fixture
async def fake():
    async with fake_discord() as fake:
        yield fake
    assert fake.errors == []


def two_guilds(fake: FakeDiscord) -> list[tuple[int, int, int]]:
    """A guild on shard 0 and one on shard 1 of 2: (guild, channel, member) each."""
    made = []
    for shard in (0, 1):
        guild = fake.add_guild(f"Guild {shard}", shard=(shard, 2))
        made.append((guild, fake.add_channel(guild), fake.add_member(guild, name=f"member{shard}")))
    return made


async def test_a_client_connects_as_many_shards_as_gateway_bot_says(fake):
    fake.shards = 2
    guilds = two_guilds(fake)
    async with running_bot(Sharded(), fake.token) as client:
        assert client.shard_count == 2 and sorted(client.shards) == [0, 1]
        assert {guild.id: guild.shard_id for guild in client.guilds} == {guilds[0][0]: 0, guilds[1][0]: 1}
        assert sorted(frame["d"]["shard"] for frame in fake.gateway.received if frame["op"] == 2) == [[0, 2], [1, 2]]


async def test_two_clients_of_one_shard_each_see_only_their_guilds_events(fake):
    guilds = two_guilds(fake)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(running_bot(Sharded(shard_count=2, shard_ids=[shard]), fake.token))
            for shard in (0, 1)
        ]
        assert [[guild.id for guild in client.guilds] for client in clients] == [[guilds[0][0]], [guilds[1][0]]]
        for _, channel, member in guilds:
            message = await fake.user_message(channel, "hello", user_id=member)
            await fake.react(channel, message.id, "👍", user_id=member)
        await fake.wait_for(lambda: all(client.reactions for client in clients), 5, "a reaction on each client")
        assert [client.reactions for client in clients] == [[guilds[0][0]], [guilds[1][0]]]

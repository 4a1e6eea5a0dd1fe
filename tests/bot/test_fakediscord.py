"""The fake Discord in tests/support/fakediscord, proved against a real discord.py ``commands.Bot``."""

from __future__ import annotations

import asyncio
import io

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from support.fakediscord import (
    EPHEMERAL,
    MANAGE_GUILD,
    FakeDiscord,
    World,
    fake_discord,
    point_discord_py_at,
    running_bot,
)
from support.fakediscord.models import LOADING

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary, with CR/LF inside


class RerollView(discord.ui.View):
    """Persistent: registered in setup_hook, survives restarts by its custom_id."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Reroll", custom_id="tiny:reroll:1")
    async def reroll(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"rerolled by {interaction.user.id}", view=None)


class Tiny(commands.Cog):
    limits = app_commands.Group(
        name="limits", description="Render limits", default_permissions=discord.Permissions(manage_guild=True)
    )
    limits_set = app_commands.Group(name="set", description="Change a limit", parent=limits)

    def __init__(self, bot: TinyBot) -> None:
        self.bot = bot

    @app_commands.command(name="render", description="Render a video")
    @app_commands.describe(prompt="What to render", frames="How many frames", image="A start image")
    async def render(
        self,
        interaction: discord.Interaction,
        prompt: str,
        frames: app_commands.Range[int, 1, 240] = 16,
        image: discord.Attachment | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)
        start = await image.read() if image else b""
        video = discord.File(io.BytesIO(b"VIDEO:" + start), filename="out.mp4")
        await interaction.followup.send(f"{prompt} x{frames}", file=video, embed=discord.Embed(title=prompt))
        await interaction.edit_original_response(content="done")

    @limits_set.command(name="frames", description="Set the frame limit")
    async def set_frames(self, interaction: discord.Interaction, value: app_commands.Range[int, 1, 240]) -> None:
        allowed = interaction.permissions.manage_guild
        text = f"frames={value}" if allowed else "You need Manage Server to change limits."
        await interaction.response.send_message(text, ephemeral=True)

    @limits.command(name="show", description="Show the limits")
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("frames<=240", ephemeral=True)
        sent = await interaction.original_response()  # GET @original
        await sent.edit(content=f"{sent.content} (checked)")

    @app_commands.command(name="post", description="Post, edit and react in the channel")
    async def post(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        message = await interaction.channel.send(
            text, view=RerollView(), allowed_mentions=discord.AllowedMentions.none()
        )
        await message.edit(content=f"{text} (edited)")
        await message.add_reaction("\N{THUMBS UP SIGN}")
        await interaction.followup.send(f"posted {message.id}", ephemeral=True)
        await interaction.delete_original_response()

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.bot.raw_reactions.append(payload)


class TinyBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.guild_id = guild_id
        self.raw_reactions: list[discord.RawReactionActionEvent] = []
        self.resumed = 0

    async def setup_hook(self) -> None:
        await self.add_cog(Tiny(self))
        self.add_view(RerollView())
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s here before a re-IDENTIFY

    async def on_resumed(self) -> None:
        self.resumed += 1


@pytest.fixture
async def fake():
    async with fake_discord(upload_limit=256 * 1024) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    return fake.default_world()


@pytest.fixture
async def bot(fake: FakeDiscord, world: World):
    async with running_bot(TinyBot(world.guild_id), fake.token) as bot:
        yield bot


async def test_login_sync_and_ready(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    assert [r.status for r in fake.requests("GET", r"/users/@me$|/oauth2/applications/@me$")] == [200, 200]
    [sync] = fake.sync_calls
    assert sync.guild_id == world.guild_id
    commands_by_name = {c["name"]: c for c in fake.synced_commands(world.guild_id)}
    assert set(commands_by_name) == {"render", "limits", "post"}
    assert commands_by_name["limits"]["default_member_permissions"] == str(MANAGE_GUILD)
    render_options = {o["name"]: o for o in commands_by_name["render"]["options"]}
    assert render_options["frames"]["type"] == 4 and render_options["frames"]["max_value"] == 240
    assert render_options["image"]["type"] == 11 and not render_options["image"].get("required")
    assert all(c["application_id"] == str(fake.bot_id) and c["version"] for c in commands_by_name.values())

    assert fake.gateway.identifies == 1 and fake.gateway.heartbeats >= 1
    guild = bot.get_guild(world.guild_id)
    assert guild is not None and guild.member_count == 4  # bot, owner, admin, member
    assert guild.me.id == fake.bot_id and bot.get_channel(world.channel_id).name == "general"


async def test_bad_token_is_a_login_failure(fake: FakeDiscord, world: World) -> None:
    bot = TinyBot(world.guild_id)
    with pytest.raises(discord.LoginFailure):
        await bot.login("wrong")
    await bot.close()


async def test_slash_defers_then_followup_carries_the_file(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    interaction = await fake.slash(
        "render",
        {"prompt": "a cat", "frames": 8},
        attachments={"image": ("start.png", PNG, "image/png")},
        user_id=world.member_id,
        channel_id=world.channel_id,
    )
    response = await interaction.wait_response()
    assert response.type == 5 and interaction.deferred and not interaction.ephemeral
    # The first followup after a thinking defer fills in the "thinking" message (same id),
    # then edit_original_response edits it again; the file stays.
    original = await interaction.wait_original(lambda m: len(m.edits) == 2)
    assert [m.id for m in interaction.followups] == [original.id]
    assert original.revisions[0].flags & LOADING and not original.flags & LOADING
    assert [r.content for r in original.revisions] == ["", "a cat x8", "done"]
    assert original.embeds[0]["title"] == "a cat"
    video = original.attachment("out.mp4")
    assert video.data == b"VIDEO:" + PNG  # the bot downloaded the option's file from the fake
    assert video.content_type == "video/mp4"
    assert [m.id for m in fake.bot_messages(world.channel_id)] == [original.id]
    assert fake.requests("GET", r"^/attachments/")[0].status == 200

    with pytest.raises(ValueError, match="between 1 and 240"):
        await fake.slash("render", {"prompt": "x", "frames": 500}, user_id=world.member_id, channel_id=world.channel_id)


async def test_subcommand_group_sees_member_permissions(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    by_admin = await fake.slash(
        "limits set frames", {"value": 120}, user_id=world.admin_id, channel_id=world.channel_id
    )
    response = await by_admin.wait_response()
    assert response.type == 4 and response.flags & EPHEMERAL and by_admin.original.content == "frames=120"
    assert int(by_admin.payload["member"]["permissions"]) & MANAGE_GUILD
    assert by_admin.payload["data"]["options"][0]["type"] == 2  # group > subcommand > value

    with pytest.raises(PermissionError):  # Discord hides the command from this member
        await fake.slash("limits", {}, subcommand="show", user_id=world.member_id, channel_id=world.channel_id)
    by_member = await fake.slash(
        "limits",
        {"value": 5},
        group="set",
        subcommand="frames",
        user_id=world.member_id,
        channel_id=world.channel_id,
        check_permissions=False,
    )
    await by_member.wait_response()
    assert by_member.original.content == "You need Manage Server to change limits."
    assert not int(by_member.payload["member"]["permissions"]) & MANAGE_GUILD


async def test_channel_message_edit_reaction_and_button(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    interaction = await fake.slash("post", {"text": "hello"}, user_id=world.member_id, channel_id=world.channel_id)
    [followup] = await interaction.wait_followups(1)
    await fake.wait_for(lambda: followup.deleted)  # it filled in the ephemeral defer, then was deleted
    posted = fake.message(int(followup.revisions[1].content.split()[1]))
    assert followup is interaction.original and followup.ephemeral
    assert [r.content for r in posted.revisions] == ["hello", "hello (edited)"]
    assert posted.custom_ids() == ["tiny:reroll:1"] and posted.reactions == {"\N{THUMBS UP SIGN}": [fake.bot_id]}
    assert posted.allowed_mentions["parse"] == []  # as sent
    assert len(fake.requests("PATCH", rf"/messages/{posted.id}$")) == 1
    await fake.wait_for(lambda: bot._connection._get_message(posted.id))  # MESSAGE_CREATE reached the bot

    await fake.react(world.channel_id, posted.id, "\N{FIRE}", user_id=world.member_id)
    await fake.wait_for(lambda: [r for r in bot.raw_reactions if r.user_id == world.member_id])
    seen = [r for r in bot.raw_reactions if r.user_id == world.member_id][0]
    assert str(seen.emoji) == "\N{FIRE}" and seen.message_id == posted.id and seen.member.id == world.member_id

    click = await fake.click(posted.id, "tiny:reroll:1", user_id=world.member_id)
    assert (await click.wait_response()).type == 7
    assert posted.content == f"rerolled by {world.member_id}" and posted.components == []
    with pytest.raises(LookupError):
        await fake.click(posted.id, "tiny:reroll:1", user_id=world.member_id)  # the button is gone


async def test_route_429_on_edit_is_retried(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    message = await bot.get_channel(world.channel_id).send("v1")
    rule = fake.inject_429("PATCH", rf"/channels/{world.channel_id}/messages/\d+$", retry_after=0.3)
    await message.edit(content="v2")
    first, second = fake.requests("PATCH", rf"/messages/{message.id}$")
    assert (first.status, second.status, rule.hits) == (429, 200, 1)
    assert second.started - first.finished >= 0.29
    assert fake.message(message.id).content == "v2"
    assert fake.message(message.id).edits[0].at >= first.finished + 0.29


async def test_global_429_is_retried(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    fake.inject_429("POST", rf"/channels/{world.channel_id}/messages$", retry_after=0.3, global_=True)
    message = await bot.get_channel(world.channel_id).send("after the global limit")
    first, second = fake.requests("POST", rf"/channels/{world.channel_id}/messages$")
    assert (first.status, second.status) == (429, 200) and second.started - first.finished >= 0.29
    assert fake.message(message.id).content == "after the global limit"


async def test_upload_over_the_limit_is_413(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    assert FakeDiscord().upload_limit == 10 * 1024 * 1024
    big = discord.File(io.BytesIO(b"x" * (fake.upload_limit + 1)), filename="big.mp4")
    with pytest.raises(discord.HTTPException) as caught:
        await bot.get_channel(world.channel_id).send(file=big)
    assert caught.value.status == 413 and caught.value.code == 40005
    assert fake.bot_messages(world.channel_id) == []
    small = discord.File(io.BytesIO(b"y" * 1000), filename="small.mp4")
    message = await bot.get_channel(world.channel_id).send(file=small)
    assert fake.message(message.id).attachment("small.mp4").data == b"y" * 1000


async def test_reconnect_resumes_and_replays_missed_events(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    message = await bot.get_channel(world.channel_id).send("react to me")
    async with fake.while_disconnected():
        await fake.react(world.channel_id, message.id, "\N{FIRE}", user_id=world.admin_id)
        await asyncio.sleep(0.1)
        assert not bot.raw_reactions  # not delivered live: the client is away
    await fake.wait_for(lambda: bot.raw_reactions and bot.resumed == 1)
    assert bot.raw_reactions[0].user_id == world.admin_id
    resume = fake.gateway.connections[-1]
    assert (resume.path, resume.hello, fake.gateway.identifies) == ("/gateway-resume", "resume", 1)
    assert fake.gateway.received[-1]["op"] == 6

    await fake.reconnect()  # plain op 7 too
    await fake.wait_for(lambda: bot.resumed == 2)


async def test_invalid_session_makes_the_client_identify_again(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    await fake.invalid_session()
    assert fake.gateway.identifies == 2 and fake.gateway.connections[-1].hello == "identify"
    interaction = await fake.slash("limits show", {}, user_id=world.admin_id, channel_id=world.channel_id)
    assert (await interaction.wait_response()).type == 4  # the new session works


async def test_discord_rules_for_interactions(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    rule = fake.inject_429("POST", r"/interactions/\d+/[^/]+/callback$", retry_after=0.2)
    shown = await fake.slash("limits show", {}, user_id=world.admin_id, channel_id=world.channel_id)
    await shown.wait_original(lambda m: m.edits)
    assert rule.hits == 1 and shown.original.content == "frames<=240 (checked)"
    assert [r.status for r in fake.requests("GET", r"/messages/@original$")] == [200]

    fake.interaction_deadline = 1e-9  # every callback is now later than Discord's 3 s
    late = await fake.slash("limits show", {}, user_id=world.admin_id, channel_id=world.channel_id)
    callbacks = await fake.wait_for(
        lambda: [r for r in fake.requests("POST", rf"/interactions/{late.id}/") if r.status]
    )
    assert callbacks[0].status == 404 and late.callbacks == [] and late.original is None


async def test_files_custom_emoji_history_and_dm(fake: FakeDiscord, world: World, bot: TinyBot) -> None:
    channel = bot.get_channel(world.channel_id)
    files = [discord.File(io.BytesIO(b"a"), "a.txt"), discord.File(io.BytesIO(PNG), "b.png")]
    message = await channel.send("two files", files=files)
    record = fake.message(message.id)
    assert [(a.filename, a.data) for a in record.attachments] == [("a.txt", b"a"), ("b.png", PNG)]
    await message.edit(attachments=[message.attachments[1]])  # keep one by id
    assert [a.filename for a in record.attachments] == ["b.png"] and len(record.edits) == 1
    assert [a.filename for a in record.revisions[0].attachments] == ["a.txt", "b.png"]

    await message.add_reaction("<:blob:1234567890>")
    assert record.reactions == {"blob:1234567890": [fake.bot_id]}
    assert [m.content async for m in channel.history(limit=5)] == ["two files"]

    dm = await (await bot.fetch_user(world.member_id)).send("your video is ready")
    assert fake.message(dm.id).guild_id is None and fake.message(dm.id).content == "your video is ready"

    await message.delete()
    assert record.deleted and fake.messages_in(world.channel_id, include_deleted=False) == []


def test_point_discord_py_at_and_undo() -> None:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    before = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    undo = point_discord_py_at(api_base="http://127.0.0.1:9/api/v10", gateway_url="ws://127.0.0.1:9/gateway")
    assert (
        Route.BASE == "http://127.0.0.1:9/api/v10"
        and str(DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"
    )
    undo()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == before

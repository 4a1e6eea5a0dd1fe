"""Discord's limits: ``bot.text.limits`` fits what the bot sends, and the loopback Discord refuses what
does not fit the way Discord does (400, code 50035 with the nested ``errors``; 50006 when empty)."""

from __future__ import annotations

import discord
import pytest
from support.botharness import command
from support.fakediscord import running_bot

from bot.text import limits


# -- bot.text.limits -------------------------------------------------------------------------------------
def test_fill_clips_only_the_parts_so_the_template_survives():
    text = limits.fill("I could not read {name}; attach it again as {kind}.", 60, name="x" * 500, kind="WAV")
    assert len(text) == 60
    assert text.startswith("I could not read x") and text.endswith("…; attach it again as WAV.")


def test_fill_leaves_a_short_part_whole_and_clips_the_long_one():
    text = limits.fill("{a} / {b}", 100, a="short", b="y" * 500)
    assert text.startswith("short / y") and text.endswith("…") and len(text) == 100


def test_content_cuts_the_middle_keeping_the_start_and_the_advice_at_the_end():
    text = limits.content("Start. " + "z" * 3000 + " Do this next.")
    assert len(text) == limits.CONTENT and text.startswith("Start. ") and text.endswith(" Do this next.")
    assert "…" in text


def test_an_embed_is_fitted_field_by_field_and_in_total():
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for _ in range(30):
        embed.add_field(name="n" * 300, value="v" * 2000)
    fitted = limits.embed(embed)
    assert len(fitted.fields) == limits.EMBED_FIELDS and fitted.title.endswith("…")
    assert all(len(f.name) <= 256 and len(f.value) <= 1024 for f in fitted.fields)
    assert limits.EMBED_TOTAL - 60 <= len(fitted) <= limits.EMBED_TOTAL  # clipped, but not more than needed


def test_a_single_long_embed_text_is_cut_to_its_own_limit_only():
    fitted = limits.embed(discord.Embed(title="t" * 300, description="short"))
    assert len(fitted.title) == limits.EMBED_TITLE and fitted.description == "short"


def test_a_custom_id_is_checked_never_clipped():
    assert limits.custom_id("animabot:reroll:42") == "animabot:reroll:42"
    with pytest.raises(ValueError):
        limits.custom_id("animabot:" + "9" * 100)


# -- the loopback Discord refuses what Discord refuses --------------------------------------------
@pytest.fixture
async def rest(fake, world):
    """A plain discord.py client logged in to the loopback Discord, and the channel to post in."""
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running_bot(client, fake.token):
        yield client.get_partial_messageable(world.channel_id, guild_id=world.guild_id)


async def test_content_over_2000_is_refused_with_50035_and_the_nested_error(rest):
    with pytest.raises(discord.HTTPException) as refused:
        await rest.send("x" * 2001)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert "Must be 2000 or fewer" in str(refused.value)


async def test_embeds_over_6000_together_are_refused(rest):
    embeds = [discord.Embed(title="t", description="d" * 4000), discord.Embed(description="e" * 2500)]
    with pytest.raises(discord.HTTPException) as refused:
        await rest.send(embeds=embeds)
    assert (refused.value.status, refused.value.code) == (400, 50035)


async def test_an_empty_message_is_refused_with_50006(rest):
    # discord.py never sends an empty body itself; send the one it would build for content=" ".
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=rest.id)
    with pytest.raises(discord.HTTPException) as refused:
        await rest._state.http.request(route, json={"content": ""})
    assert (refused.value.status, refused.value.code) == (400, 50006)


# -- end to end -----------------------------------------------------------------------------------
async def test_a_refusal_quoting_a_1000_character_malformed_prompt_fits_in_one_message(fake, world, bot):
    # Backslashes double in the engine's repr() of the piece it could not read: the refusal
    # would be over 2000 characters if nothing clipped it.
    prompt = "0: a cat | " + "\\" * 989
    assert len(prompt) == 1000
    answer = await command(fake, "animate", {"prompt": prompt}, user_id=world.member_id, channel_id=world.channel_id)
    assert len(answer.content) <= 2000
    assert answer.content.startswith("Keyframe prompts look like") and answer.content.endswith("'.")
    assert await bot.bot.store.active_jobs() == []

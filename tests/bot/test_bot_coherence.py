"""/animate coherence: through the loopback Discord (the choices offered, the job queued, a re-roll
keeping it) and ``animabot render --coherence`` with ``--from`` drawing the same clip again."""

from __future__ import annotations

import dataclasses

import numpy as np
from support.botharness import command, job_id_in, make_config, start
from test_cli import animabot

from engine.video.read import decode_frames, read_recipe

TINY = ("--model", "test-tiny", "--frames", 3, "--fps", 8, "--steps", 2, "--size", "64x64")


async def test_animate_offers_the_coherences_this_host_renders_and_a_reroll_keeps_the_choice(tmp_path, fake, world):
    running = await start(make_config(tmp_path / "data", fake, world), with_runtime=False)
    try:
        (animate,) = [c for c in fake.synced_commands(world.guild_id) if c["name"] == "animate"]
        (option,) = [o for o in animate["options"] if o["name"] == "coherence"]
        assert [c["value"] for c in option["choices"]] == ["off", "cross-frame"]  # no motion adapter here
        options = {"prompt": "a cat", "coherence": "cross-frame"}
        answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
        job = await running.bot.store.get(job_id_in(answer.content))
        assert job.params.coherence == "cross-frame"
        again = await running.bot.actions.reroll(
            job, user_id=world.member_id, guild_id=world.guild_id, channel_id=world.channel_id
        )
        assert again.params.coherence == "cross-frame" and again.params.seed != job.params.seed
    finally:
        await running.stop()
    assert fake.errors == []


async def test_animate_offers_motion_where_a_motion_adapter_is_configured_and_a_reroll_keeps_it(tmp_path, fake, world):
    config = make_config(tmp_path / "data", fake, world)
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, motion_adapter="test-tiny"))
    running = await start(config, with_runtime=False)
    try:
        (animate,) = [c for c in fake.synced_commands(world.guild_id) if c["name"] == "animate"]
        (option,) = [o for o in animate["options"] if o["name"] == "coherence"]
        assert [c["value"] for c in option["choices"]] == ["off", "cross-frame", "motion"]
        options = {"prompt": "a cat", "coherence": "motion"}
        answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
        job = await running.bot.store.get(job_id_in(answer.content))
        assert job.params.coherence == "motion"
        again = await running.bot.actions.reroll(
            job, user_id=world.member_id, guild_id=world.guild_id, channel_id=world.channel_id
        )
        assert again.params.coherence == "motion" and again.params.seed != job.params.seed
    finally:
        await running.stop()
    assert fake.errors == []


def test_render_coherence_cross_frame_is_in_the_recipe_and_render_from_draws_it_again(tmp_path):
    first = tmp_path / "cross.mp4"
    done = animabot("render", "a cat on a wall", *TINY, "--seed", 5, "--coherence", "cross-frame", "-o", first)
    assert done.returncode == 0, done.stderr
    assert "coherence cross-frame" in done.stderr  # the header line
    assert read_recipe(first)["params"]["coherence"] == "cross-frame"
    again = tmp_path / "again.mp4"
    done = animabot("render", "--from", first, "-o", again)
    assert done.returncode == 0, done.stderr
    assert read_recipe(again)["params"] == read_recipe(first)["params"]
    assert all(np.array_equal(a, b) for a, b in zip(decode_frames(first), decode_frames(again), strict=True))

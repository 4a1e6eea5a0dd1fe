"""A recipe whose integer settings are not whole numbers is refused at Remix with one sentence,
and nothing is queued (issue 20, defect 1: such a job used to fail every job of its batch)."""

from __future__ import annotations

from support.clips import FPS, moving_square_frames

from engine.request.params import RenderParams
from engine.request.recipe import build_recipe
from engine.video.formats import write_clip


async def test_remix_of_a_recipe_with_fractional_steps_is_one_sentence_and_queues_nothing(fake, world, bot, tmp_path):
    params = RenderParams(prompt="a paper boat", frames=2, steps=2, width=64, height=64, seed=11)
    recipe = build_recipe(params, model=None, controlnet=None, job_id=None)
    recipe["params"]["steps"] = 2.5  # what a hostile member writes into a file's recipe
    video = write_clip(moving_square_frames(2), tmp_path / "boat.gif", FPS, recipe=recipe)

    posted = await fake.user_message(world.channel_id, "look", user_id=world.member_id,
                                     attachments=[("boat.gif", video.read_bytes())])  # fmt: skip
    menu = await fake.message_command("Remix", posted.id, user_id=world.member_id)
    answer = await menu.wait_response(10)
    assert answer.type == 4 and answer.ephemeral
    assert answer.data["content"] == "steps must be a whole number, got 2.5."
    assert await bot.bot.store._db.execute_fetchall("SELECT id FROM jobs") == []

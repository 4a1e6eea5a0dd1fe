"""A recipe whose integer settings are not whole numbers is refused at Remix with one sentence,
and nothing is queued (issue 20, defect 1: such a job used to fail every job of its batch)."""

from __future__ import annotations

import json

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


async def test_the_remix_form_settings_go_through_the_request_schema(fake, world, bot, tmp_path):
    """The form's settings are JSON a member edits: each hostile value is one private sentence naming
    its field, a whole number written 2.0 is 2, and an unknown key is refused by the form itself."""
    params = RenderParams(prompt="a paper boat", frames=2, steps=2, width=64, height=64, seed=11)
    video = write_clip(moving_square_frames(2), tmp_path / "boat.gif", FPS,
                       recipe=build_recipe(params, model=None, controlnet=None, job_id=None))  # fmt: skip
    posted = await fake.user_message(world.channel_id, "look", user_id=world.member_id,
                                     attachments=[("boat.gif", video.read_bytes())])  # fmt: skip
    menu = await fake.message_command("Remix", posted.id, user_id=world.member_id)
    assert (await menu.wait_response(10)).type == 9
    settings = {k: v for k, v in params.to_dict().items() if k not in ("prompt", "negative_prompt")}
    for change, sentence in [
        ({"steps": 2.5}, "steps must be a whole number, got 2.5."),
        ({"steps": "12"}, "steps must be a whole number, got '12'."),
        ({"guidance": 1e999}, "guidance must be a finite number, got inf."),  # JSON's 1e999 reads as inf
        ({"frames": [2]}, "frames must be a whole number, got [2]."),
        ({"color_coherence": 1}, "color coherence must be true or false, got 1."),
        ({"loras": [["pixel", "heavy"]]}, "the weight of LoRA pixel must be a number, got 'heavy'."),
        ({"frmaes": 2}, "Unknown setting(s) frmaes; choose from: "),
    ]:
        text = json.dumps({**settings, **change}).replace("Infinity", "1e999")
        sent = await fake.submit_modal(menu, {"settings": text})
        [answer] = await sent.wait_followups(1, 10)
        assert answer.ephemeral and answer.content.startswith(sentence), (change, answer.content)
    assert await bot.bot.store._db.execute_fetchall("SELECT id FROM jobs") == []
    sent = await fake.submit_modal(menu, {"settings": json.dumps({**settings, "steps": 2.0, "seed": 11.0})})
    [queued] = await sent.wait_followups(1, 10)
    [row] = await bot.bot.store._db.execute_fetchall("SELECT id FROM jobs")
    job = await bot.bot.store.get(row["id"])
    assert (job.params.steps, type(job.params.steps), job.seed) == (2, int, 11), queued.content

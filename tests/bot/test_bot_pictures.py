"""End to end: starting a video from a member's picture, through the real discord.py client.

``/animate image:``, the Animate message context menu and its modal, the refusals of bad pictures
(before anything is queued), the guild limits on pictures and controls, and 🔄 re-roll keeping the
picture. Frames are read back from the job's saved PNGs (exact) and the MP4 the bot posted.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.botharness import command, job_id_in
from support.waiting import wait_job, wait_result, wait_stored

from engine.render.frames import load_frames
from engine.request.picture import decode_png, prepare_picture
from engine.runtime.worker import job_dir
from engine.store.jobs import JobStatus
from engine.store.pictures import picture_path
from engine.video.read import probe

PROMPT = "the portrait smiles"


def _png(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.RandomState(seed)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = rng.randint(0, 255, 3)
    pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = rng.randint(0, 255, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def _no_jobs(running) -> bool:
    return await running.bot.store.active_jobs(None) == []


async def _frame0_is_the_picture(config, job):
    """The job's saved frame 0 is exactly the picture kept under its key, and that is 'fitted'."""
    frames = load_frames(job_dir(config, job.id) / "frames", 1)
    kept = decode_png(picture_path(config.data_dir, job.params.image_key).read_bytes())
    np.testing.assert_array_equal(frames[0], kept)
    return kept


async def test_animate_with_an_image_starts_from_it(bot, fake, world, config):
    data = _png(90, 60)
    answer = await command(
        fake, "animate", {"prompt": PROMPT, "frames": 3, "steps": 2, "seed": 7, "size": "square"},
        user_id=world.member_id, channel_id=world.channel_id, attachments={"image": ("me.png", data, "image/png")},
    )  # fmt: skip
    job_id = job_id_in(answer.content)
    result = await wait_result(fake, world.channel_id, job_id)
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    assert job.status is JobStatus.DONE and job.params.image_key is not None
    assert (job.params.width, job.params.height) == (512, 512)
    kept = await _frame0_is_the_picture(config, job)
    np.testing.assert_array_equal(kept, prepare_picture(data, (512, 512)).pixels)
    [video] = result.attachments
    assert probe(job.result_path).frames == 3 and video.data == Path(job.result_path).read_bytes()
    assert "from a picture" in result.content  # the recipe says so, without the picture itself
    assert [a.filename for a in result.attachments] == [video.filename]


async def test_the_animate_context_menu_asks_for_a_prompt_and_queues_the_render(bot, fake, world, config):
    menu = fake.command("Animate", world.guild_id, kind=3)
    assert menu["type"] == 3 and menu["name"] == "Animate"
    data = _png(60, 100, seed=1)  # portrait: without a size, the render is 512x768
    message = await fake.user_message(
        world.channel_id, "look at my cat", user_id=world.admin_id, attachments=[("cat.png", data, "image/png")]
    )
    started = time.monotonic()
    interaction = await fake.message_command("Animate", message.id, user_id=world.member_id)
    modal = await interaction.wait_response(3.0)
    assert modal.type == 9 and time.monotonic() - started < 3.0
    submitted = await fake.submit_modal(
        interaction, {"animabot:animate:prompt": "the cat waves", "animabot:animate:negative": "blurry"}
    )
    assert (await submitted.wait_response()).type == 5
    [answer] = await submitted.wait_followups(1)
    assert answer.ephemeral and answer.allowed_mentions == {"parse": []}
    job_id = job_id_in(answer.content)
    await wait_result(fake, world.channel_id, job_id)
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    assert job.status is JobStatus.DONE and job.user_id == world.member_id
    assert (job.params.prompt, job.params.negative_prompt) == ("the cat waves", "blurry")
    assert (job.params.width, job.params.height) == (512, 768)
    await _frame0_is_the_picture(config, job)


async def test_the_context_menu_on_a_message_without_a_picture_says_so(bot, fake, world):
    message = await fake.user_message(world.channel_id, "no picture here", user_id=world.admin_id)
    interaction = await fake.message_command("Animate", message.id, user_id=world.member_id)
    response = await interaction.wait_response()
    assert response.type == 4 and response.data["flags"] & 64
    assert (
        response.data["content"]
        == "That message has no picture to animate; use Animate on a message with an image attached."
    )
    assert await _no_jobs(bot)


def _bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(4096)))


@pytest.mark.parametrize(
    ("upload", "sentence"),
    [
        (("notes.txt", b"just some text\n", "text/plain"), "That file is not a picture; attach a PNG, JPEG, WebP or GIF image."),
        (("cut.png", _png(64, 64)[:60], "image/png"), "That picture could not be decoded (the file is damaged or cut short); save it again and attach it once more."),
        (("bomb.png", _bomb(), "image/png"), "That picture has far more than 40 megapixels; scale it down and send it again."),
    ],
    ids=["text", "truncated", "20000x20000"],
)  # fmt: skip
async def test_a_bad_picture_is_refused_with_one_sentence_before_queueing(bot, fake, world, upload, sentence):
    answer = await command(
        fake, "animate", {"prompt": PROMPT}, user_id=world.member_id, channel_id=world.channel_id,
        attachments={"image": upload},
    )  # fmt: skip
    assert answer.content == sentence
    assert await _no_jobs(bot) and await bot.bot.store.latest_done(world.member_id, world.guild_id) is None


async def test_a_server_can_forbid_pictures_and_controls(bot, fake, world):
    await command(fake, "limits set", {"pictures": False, "controls": "canny, pose"}, user_id=world.admin_id, channel_id=world.channel_id)  # fmt: skip
    refused = await command(
        fake, "animate", {"prompt": PROMPT}, user_id=world.member_id, channel_id=world.channel_id,
        attachments={"image": ("me.png", _png(64, 64), "image/png")},
    )  # fmt: skip
    assert (
        refused.content == "This server does not allow starting from a picture; leave out the image, or ask an admin."
    )
    refused = await command(fake, "animate", {"prompt": PROMPT, "control": "depth"}, user_id=world.member_id, channel_id=world.channel_id)  # fmt: skip
    assert refused.content == "This server does not allow the depth control; use canny or pose."
    assert await _no_jobs(bot)
    shown = await command(fake, "limits show", user_id=world.admin_id, channel_id=world.channel_id)
    assert "Start from a picture: **no**" in shown.content and "Controls: **canny, pose**" in shown.content


async def test_reroll_keeps_the_picture_with_a_new_seed(bot, fake, world, config):
    answer = await command(
        fake, "animate", {"prompt": PROMPT, "frames": 2, "steps": 2, "size": "square", "control": "depth"},
        user_id=world.member_id, channel_id=world.channel_id, attachments={"image": ("me.png", _png(64, 64, 3), "image/png")},
    )  # fmt: skip
    first_id = job_id_in(answer.content)
    result = await wait_result(fake, world.channel_id, first_id)
    first = await wait_job(bot, first_id, lambda j: j.result_post_id is not None)
    await fake.react(world.channel_id, result.id, "🔄", user_id=world.admin_id)
    second = await wait_stored(bot.bot.store, first_id + 1, lambda j: j.result_post_id is not None)
    assert second.parent_id == first_id
    assert second.params.image_key == first.params.image_key and second.params.control == "depth"
    assert second.seed != first.seed
    np.testing.assert_array_equal(
        await _frame0_is_the_picture(config, second), await _frame0_is_the_picture(config, first)
    )

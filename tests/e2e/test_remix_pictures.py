"""Pictures belong to their guild (issue 20), end to end through the loopback Discord.

A member starts a video from their photo at image strength 0.9. The Remix button in their server
starts again from the stored photo; a stranger in another server who re-uploads the posted video and
remixes it at strength 0 gets the file's own frame 0, never the photo, and neither that remix nor a
render naming the photo's key in the stranger's server renews the photo's retention.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image
from support.botharness import command, job_id_in, make_config, modal_inputs, start
from support.waiting import wait_job, wait_result

from engine.errors import UserError
from engine.render.frames import load_frames
from engine.request.params import RenderParams
from engine.request.picture import decode_png
from engine.runtime.worker import job_dir
from engine.store.jobs import JobKind, JobStatus
from engine.store.pictures import picture_path
from engine.video.read import first_frame, read_recipe


def _photo() -> bytes:
    """A picture no render would draw: bright and dark blocks."""
    pixels = np.zeros((512, 512, 3), dtype=np.uint8)
    pixels[:256, :256] = (250, 240, 20)
    pixels[256:, 256:] = (20, 200, 250)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def _remix_at_strength_0(fake, opened) -> int:
    """Submit the Remix form ``opened`` with image strength 0; the queued job's id."""
    form = await opened.wait_response(10)
    assert form.type == 9
    settings = json.loads(modal_inputs(form)["settings"])
    assert "image_key" not in settings  # the picture is never the member's to name
    sent = await fake.submit_modal(opened, {"settings": json.dumps({**settings, "image_strength": 0})})
    [queued] = await sent.wait_followups(1, 20)
    return job_id_in(queued.content)


def _frame0(config, job_id: int) -> np.ndarray:
    return load_frames(job_dir(config, job_id) / "frames", 1)[0].astype(int)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


async def test_a_remix_starts_from_the_guilds_own_picture_or_the_files_frame_0(fake, world, tmp_path):
    elsewhere = fake.add_guild("Elsewhere")  # before the bot connects
    channel = fake.add_channel(elsewhere, "general")
    stranger = fake.add_member(elsewhere, name="stranger")
    config = make_config(tmp_path / "data", fake, world)
    config = dataclasses.replace(
        config, discord=dataclasses.replace(config.discord, guild_ids=(world.guild_id, elsewhere))
    )
    running = await start(config)
    store = running.bot.store
    try:
        # 1. the member's video, from their photo re-drawn at 0.9
        answer = await command(
            fake, "animate", {"prompt": "a portrait", "frames": 2, "steps": 2, "size": "square", "image_strength": 0.9},
            user_id=world.member_id, channel_id=world.channel_id, attachments={"image": ("me.png", _photo(), "image/png")},
        )  # fmt: skip
        first_id = job_id_in(answer.content)
        posted = await wait_result(fake, world.channel_id, first_id)
        first = await wait_job(running, first_id, lambda j: j.result_post_id is not None)
        key = first.params.image_key
        photo = decode_png(picture_path(config.data_dir, key).read_bytes())
        video = tmp_path / posted.attachments[0].filename
        video.write_bytes(posted.attachments[0].data)
        recipe = read_recipe(video)
        assert recipe["picture"] is True and "image_key" not in recipe["params"]
        assert key.encode() not in posted.attachments[0].data
        sent_at = await store.picture_used_at(key, world.guild_id)

        # 2. the Remix button in the member's server: the stored photo is frame 0 again, exactly
        opened = await fake.click(posted.id, f"animabot:remix:{first_id}", user_id=world.member_id)
        own_id = await _remix_at_strength_0(fake, opened)
        own = await wait_job(running, own_id, lambda j: j.result_post_id is not None)
        assert own.status is JobStatus.DONE and own.params.image_key == key
        np.testing.assert_array_equal(_frame0(config, own_id), photo)
        renewed_at = await store.picture_used_at(key, world.guild_id)
        assert renewed_at > sent_at

        # 3. a stranger elsewhere re-uploads the video and remixes it at 0: frame 0 is the file's, not the photo
        repost = await fake.user_message(
            channel, "look", user_id=stranger, attachments=[("copy.mp4", video.read_bytes())]
        )
        opened = await fake.message_command("Remix", repost.id, user_id=stranger)
        theirs_id = await _remix_at_strength_0(fake, opened)
        theirs = await wait_job(running, theirs_id, lambda j: j.result_post_id is not None)
        assert theirs.status is JobStatus.DONE, theirs.error
        assert (theirs.guild_id, theirs.parent_id) == (elsewhere, None) and theirs.params.image_key != key
        file_frame0 = first_frame(video)
        assert _differ(_frame0(config, theirs_id), file_frame0) < 1.0  # the fitted frame 0: codec noise at most
        assert _differ(file_frame0, photo) > 20  # the file's frame 0 was re-drawn at 0.9: clearly not the photo
        assert _differ(_frame0(config, theirs_id), photo) > 20

        # 4. the stranger's server never renews nor reaches the photo, even naming its key
        with pytest.raises(UserError, match="no longer kept"):
            await running.bot.actions.queue_render(
                JobKind.ANIMATE, RenderParams("a portrait", width=512, height=512, frames=2, steps=2, image_key=key),
                user_id=stranger, guild_id=elsewhere, channel_id=channel,
            )  # fmt: skip
        assert await store.picture_used_at(key, world.guild_id) == renewed_at
        assert await store.picture_used_at(key, elsewhere) is None
        assert fake.errors == []
    finally:
        await running.stop()

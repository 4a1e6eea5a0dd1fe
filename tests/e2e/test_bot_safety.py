"""The content policy end to end, on the loopback Discord with the tiny safety checker at threshold 0
(it flags every picture it checks): what is refused, stopped, hidden, and where nothing is checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY
from support.botharness import command, job_id_in, make_config
from support.media import write_wav
from support.waiting import wait_job, wait_result

from engine.config import SafetyConfig
from engine.request.safety import FLAGGED
from engine.runtime.in_flight import job_dir
from engine.store.jobs import JobStatus
from engine.store.pictures import picture_path


@pytest.fixture
def adult(fake, world) -> int:
    """An age-restricted channel (made before the bot connects, so GUILD_CREATE announces it)."""
    return fake.add_channel(world.guild_id, "adults-only", nsfw=True)


SEND_MESSAGES_IN_THREADS = 1 << 38


@pytest.fixture
def adult_thread(fake, world, adult) -> int:
    fake.state.guild(world.guild_id).roles[world.guild_id].permissions |= SEND_MESSAGES_IN_THREADS
    return fake.add_thread(adult, "a thread")


@pytest.fixture
def config(tmp_path, fake, world, adult, adult_thread):
    safety = SafetyConfig(model="test-tiny", threshold=0.0, every_k_frames=2, banned_words=("gore",))
    return make_config(tmp_path / "data", fake, world, safety=safety)


def png(seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def animate(fake, world, channel: int, prompt: str = "a lighthouse", **options):
    return await command(fake, "animate", {"prompt": prompt, "frames": 4, **options}, user_id=world.member_id,
                         channel_id=channel)  # fmt: skip


def flagged(action: str, what: str) -> float:
    """``animabot_safety_flagged_total{action, what}`` in this process (0 before the first)."""
    return REGISTRY.get_sample_value("animabot_safety_flagged_total", {"action": action, "what": what}) or 0.0


def attachments(fake, channel: int) -> list[str]:
    return [a.filename for m in fake.bot_messages(channel, include_deleted=True) for a in m.attachments]


async def test_a_banned_word_is_refused_before_queueing_without_repeating_it(fake, world, bot):
    refused = await animate(fake, world, world.channel_id, "G0R3 at the lighthouse")
    assert refused.content == "Your prompt uses a word this server does not allow; rephrase it and try again."
    await command(fake, "limits set", {"banned_words": "storm, sea monster"}, user_id=world.admin_id,
                  channel_id=world.channel_id)  # fmt: skip
    refused = await animate(fake, world, world.channel_id, "a lighthouse", negative="a SEA  monster")
    assert "does not allow" in refused.content and "monster" not in refused.content
    assert await bot.bot.store.get(1) is None  # nothing was queued


async def test_a_flagged_frame_0_stops_the_render_and_posts_only_the_sentence(fake, world, bot, config):
    job_id = job_id_in((await animate(fake, world, world.channel_id, frames=6)).content)
    job = await wait_job(bot, job_id, lambda j: j.status.finished and j.result_post_id is not None)
    assert (job.status, job.error, job.safety) == (JobStatus.FAILED, FLAGGED, "block")
    assert job.frames_done == 0 < job.frames_total == 6  # stopped after frame 0's round, not after 6
    assert attachments(fake, world.channel_id) == []  # no frame, no preview, no video
    shown = lambda: any(FLAGGED in m.content for m in fake.bot_messages(world.channel_id))  # noqa: E731
    await fake.wait_for(shown, 30, "the progress message saying why (its last edit follows the delivery)")
    assert not job_dir(config, job_id).exists()  # what it drew is deleted


async def test_a_flagged_start_picture_ends_the_job_before_any_frame_and_is_deleted(fake, world, bot, config):
    pictures = flagged("block", "picture")
    answer = await command(fake, "animate", {"prompt": "the portrait smiles", "frames": 3, "size": "square"},
                           user_id=world.member_id, channel_id=world.channel_id,
                           attachments={"image": ("me.png", png(), "image/png")})  # fmt: skip
    job_id = job_id_in(answer.content)
    job = await wait_job(bot, job_id, lambda j: j.status.finished and j.result_post_id is not None)
    assert (job.status, job.error, job.frames_done) == (JobStatus.FAILED, FLAGGED, 0)
    assert flagged("block", "picture") == pictures + 1  # counted for the moderators' dashboard
    assert attachments(fake, world.channel_id) == []
    assert not picture_path(config.data_dir, job.params.image_key).exists()
    assert not job_dir(config, job_id).exists()


async def test_spoiler_mode_posts_the_flagged_video_as_a_spoiler(fake, world, bot):
    await command(fake, "limits set", {"safety": "spoiler"}, user_id=world.admin_id, channel_id=world.channel_id)
    job_id = job_id_in((await animate(fake, world, world.channel_id, frames=3)).content)
    message = await wait_result(fake, world.channel_id, job_id)
    job = await bot.bot.store.get(job_id)
    assert (job.status, job.safety) == (JobStatus.DONE, "spoiler")
    assert [a.filename for a in message.attachments] == [f"SPOILER_animabot-{job_id}-seed{job.seed}.mp4"]
    assert "posted as a spoiler" in message.content


async def test_an_age_restricted_channel_and_its_threads_deliver_the_same_request(
    fake, world, bot, adult, adult_thread
):
    for channel in (adult, adult_thread):
        job_id = job_id_in((await animate(fake, world, channel, frames=3)).content)
        job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
        assert (job.status, job.safety) == (JobStatus.DONE, "off")
        assert f"animabot-{job_id}-seed{job.seed}.mp4" in attachments(fake, channel)  # its previews are shown too


async def test_a_reroll_and_a_remix_in_a_normal_channel_of_an_age_restricted_result_are_checked(
    fake, world, bot, adult
):
    job_id = job_id_in((await animate(fake, world, adult, frames=2)).content)
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    [video] = [a for m in fake.bot_messages(adult) for a in m.attachments if a.filename.endswith(".mp4")]

    # a re-roll asked for in #general (what its button or reaction does there)
    reroll = await bot.bot.actions.reroll(job, user_id=world.member_id, guild_id=world.guild_id,
                                          channel_id=world.channel_id)  # fmt: skip
    # Remix from the context menu on the video re-posted in #general
    repost = await fake.user_message(world.channel_id, "look", user_id=world.member_id,
                                     attachments=[(video.filename, video.data)])  # fmt: skip
    opened = await fake.message_command("Remix", repost.id, user_id=world.member_id)
    await opened.wait_response(10)
    sent = await fake.submit_modal(opened, {"prompt": "a lighthouse at night"})
    [queued] = await sent.wait_followups(1, 10)
    remix_id = job_id_in(queued.content)
    for new_id in (reroll.id, remix_id):
        new = await wait_job(bot, new_id, lambda j: j.status.finished and j.result_post_id is not None)
        assert (new.safety, new.status, new.error) == ("block", JobStatus.FAILED, FLAGGED)
    assert attachments(fake, world.channel_id) == []


# -- /mux follows the policy of the channel where it is used ---------------------------------------
async def mux(fake, world, channel: int, job: int, tmp_path):
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes()
    answer = await command(fake, "mux", {"job": job}, user_id=world.member_id, channel_id=channel,
                           attachments={"audio": ("tone.wav", wav)})  # fmt: skip
    return job_id_in(answer.content)


async def test_mux_in_a_normal_channel_of_an_age_restricted_video_checks_its_frames(fake, world, bot, adult, tmp_path):
    made = job_id_in((await animate(fake, world, adult, frames=2)).content)
    await wait_result(fake, adult, made)
    blocked = flagged("block", "frame")
    mux_id = await mux(fake, world, world.channel_id, made, tmp_path)
    muxed = await wait_job(bot, mux_id, lambda j: j.status.finished and j.result_post_id is not None)
    assert (muxed.safety, muxed.status, muxed.error) == ("block", JobStatus.FAILED, FLAGGED)
    assert attachments(fake, world.channel_id) == []
    assert flagged("block", "frame") == blocked + 1
    # the same video muxed where it was made is posted as it is
    again = await mux(fake, world, adult, made, tmp_path)
    message = await wait_result(fake, adult, again)
    assert (await bot.bot.store.get(again)).safety == "off"
    assert message.attachments[0].filename.startswith(f"animabot-{again}-")


async def test_mux_under_the_spoiler_policy_posts_a_flagged_video_as_a_spoiler(fake, world, bot, adult, tmp_path):
    made = job_id_in((await animate(fake, world, adult, frames=2)).content)
    await wait_result(fake, adult, made)
    await command(fake, "limits set", {"safety": "spoiler"}, user_id=world.admin_id, channel_id=world.channel_id)
    spoilered = flagged("spoiler", "frame")
    mux_id = await mux(fake, world, world.channel_id, made, tmp_path)
    message = await wait_result(fake, world.channel_id, mux_id)
    assert flagged("spoiler", "frame") == spoilered + 1
    assert [a.filename for a in message.attachments] == [
        f"SPOILER_animabot-{mux_id}-seed{(await bot.bot.store.get(made)).seed}-audio.mp4"
    ]


async def test_mux_of_a_video_whose_prompt_this_channel_bans_is_refused_before_queueing(
    fake, world, bot, adult, tmp_path
):
    await command(fake, "limits set", {"safety": "off"}, user_id=world.admin_id, channel_id=world.channel_id)
    made = job_id_in((await animate(fake, world, adult, "gore at the lighthouse", frames=2)).content)
    await wait_result(fake, adult, made)
    await command(fake, "limits set", {"safety": "block"}, user_id=world.admin_id, channel_id=world.channel_id)
    words = flagged("block", "words")
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes()
    refused = await command(fake, "mux", {"job": made}, user_id=world.member_id, channel_id=world.channel_id,
                            attachments={"audio": ("tone.wav", wav)})  # fmt: skip
    assert refused.content == (
        f"Job {made}'s prompt uses a word this server does not allow here; "
        "/mux it in an age-restricted channel or pick another video."
    )
    assert flagged("block", "words") == words + 1

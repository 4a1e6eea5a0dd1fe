"""End to end: /limits (admins only), limits refusing a request, /mux, /queue, /cancel and the
apology for an unexpected error."""

from __future__ import annotations

import logging

import pytest

from bot import progress as progress_module
from bot.settings import GuildLimits, get_limits
from support.botharness import command, job_id_in, progress_of, wait_job, wait_result, write_wav
from engine.queue.jobs import JobKind, JobStatus
from engine.video.read import probe


async def test_limits_are_for_admins_and_refuse_requests_over_them(fake, world, bot):
    channel, store = world.channel_id, bot.bot.store
    # 1. the command is hidden from members (default permissions) ...
    with pytest.raises(PermissionError):
        await fake.slash("limits set", {"max_frames": 4}, user_id=world.member_id, channel_id=channel)
    # ... and refused at run time should a server show it to them anyway
    refused = await command(fake, "limits set", {"max_frames": 4}, user_id=world.member_id, channel_id=channel,
                            check_permissions=False)  # fmt: skip
    assert refused.content == "Only members with the Manage Server permission can view or change the limits."
    assert (await get_limits(store, world.guild_id, defaults=bot.bot.config.limits)).max_frames == 12

    # 2. an admin's change is applied and stored
    answer = await command(fake, "limits set", {"max_frames": 4, "daily_quota": 7, "cooldown_seconds": 0},
                           user_id=world.admin_id, channel_id=channel)  # fmt: skip
    assert "Limits updated" in answer.content and "Max frames: **4**" in answer.content
    limits = await get_limits(store, world.guild_id, defaults=bot.bot.config.limits)
    assert (limits.max_frames, limits.daily_quota) == (4, 7)
    shown = await command(fake, "limits show", user_id=world.admin_id, channel_id=channel)
    assert "Renders per user per UTC day: **7**" in shown.content

    # 3. a request over a limit gets the limits check's reason, privately, and queues nothing
    over = await command(fake, "animate", {"prompt": "a cat", "frames": 6}, user_id=world.member_id,
                         channel_id=channel)  # fmt: skip
    assert over.content == "This server allows at most 4 frames; you asked for 6."
    assert await store.active_jobs() == [] and await store.get(1) is None
    invalid = await command(fake, "animate", {"prompt": "0: a cat | 0: a dog"}, user_id=world.member_id,
                            channel_id=channel)  # fmt: skip
    assert "increasing frame order" in invalid.content  # a UserError's text, as it is

    # 4. renders can be kept to some channels
    allowed = await command(fake, "limits set", {"channel": channel}, user_id=world.admin_id, channel_id=channel)
    assert f"Channels: **<#{channel}>**" in allowed.content
    elsewhere = fake.add_channel(world.guild_id, "random")
    refused = await command(fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=elsewhere)
    assert refused.content == f"Renders are not allowed in this channel; use <#{channel}>."

    # 5. reset puts the defaults back
    await command(fake, "limits reset", user_id=world.admin_id, channel_id=channel)
    assert await get_limits(store, world.guild_id, defaults=bot.bot.config.limits) == GuildLimits.from_config(
        bot.bot.config.limits
    )


async def test_mux_puts_a_wav_on_the_latest_video_and_explains_bad_files(fake, world, bot, tmp_path):
    channel, member = world.channel_id, world.member_id
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes()

    nothing = await command(fake, "mux", user_id=member, channel_id=channel, attachments={"audio": ("tone.wav", wav)})
    assert nothing.content == "You have no finished video here yet; make one with /animate first."

    job_id = job_id_in((await command(fake, "animate", {"prompt": "a drum"}, user_id=member, channel_id=channel)).content)
    await wait_result(fake, channel, job_id)

    # 1. a text file, and a text file dressed up as audio, get clear messages; nothing is queued
    text = await command(fake, "mux", user_id=member, channel_id=channel,
                         attachments={"audio": ("notes.txt", b"hello", "text/plain")})  # fmt: skip
    assert text.content == "That file (text/plain) is not audio; attach an MP3, WAV, OGG, FLAC or M4A file."
    fake_wav = await command(fake, "mux", user_id=member, channel_id=channel,
                             attachments={"audio": ("song.wav", b"not really audio" * 50, "audio/wav")})  # fmt: skip
    assert "not an audio file that can be decoded" in fake_wav.content
    assert not list((bot.bot.config.data_dir / "uploads").iterdir())  # the rejected upload was removed
    too_long = write_wav(tmp_path / "long.wav", seconds=601, rate=1000).read_bytes()
    long_answer = await command(fake, "mux", user_id=member, channel_id=channel,
                                attachments={"audio": ("long.wav", too_long)})  # fmt: skip
    assert long_answer.content.startswith("That audio is 10 min 01 s long; /mux takes at most 10 min 00 s")
    downloads = len(fake.requests("GET", r"^/attachments/"))
    huge = await command(fake, "mux", user_id=member, channel_id=channel,
                         attachments={"audio": ("huge.wav", bytes(26 * 2**20), "audio/wav")})  # fmt: skip
    assert huge.content == "That file is 26 MiB; audio for /mux can be at most 25 MiB."
    assert len(fake.requests("GET", r"^/attachments/")) == downloads  # refused before downloading

    # 2. a real WAV is muxed into the latest video and the new MP4 posted
    answer = await command(fake, "mux", user_id=member, channel_id=channel, attachments={"audio": ("tone.wav", wav)})
    mux_id = job_id_in(answer.content)
    assert f"adding your audio to job {job_id}" in answer.content
    result = await wait_result(fake, channel, mux_id)
    mux = await bot.bot.store.get(mux_id)
    assert (mux.kind, mux.parent_id, mux.status) == (JobKind.MUX, job_id, JobStatus.DONE)
    parent = await bot.bot.store.get(job_id)
    [video] = result.attachments
    assert video.filename == f"animabot-{mux_id}-seed{parent.seed}-audio.mp4"
    uploaded = tmp_path / video.filename
    uploaded.write_bytes(video.data)
    info = probe(uploaded)
    assert info.has_audio and info.frames == 2
    uploads = bot.bot.config.data_dir / "uploads"
    await fake.wait_for(lambda: not list(uploads.iterdir()), 5, "the used upload to be removed")


async def test_queue_and_cancel(fake, world, bot):
    channel, member, store = world.channel_id, world.member_id, bot.bot.store
    empty = await command(fake, "queue", user_id=member, channel_id=channel)
    assert empty.content.startswith("The queue is empty")

    long = {"prompt": "a long journey", "frames": 12, "size": "square"}
    first = job_id_in((await command(fake, "animate", long, user_id=member, channel_id=channel)).content)
    await wait_job(bot, first, lambda j: j.status is JobStatus.RUNNING)
    second_answer = await command(fake, "animate", long, user_id=world.admin_id, channel_id=channel)
    second = job_id_in(second_answer.content)
    assert "position 1 in the queue" in second_answer.content

    listing = await command(fake, "queue", user_id=world.admin_id, channel_id=channel)
    assert f"job {first} by <@{member}>" in listing.content and f"1. job {second} by you" in listing.content

    # the member may not cancel the admin's job (no Manage Messages); the admin may
    no = await command(fake, "cancel", {"job": second}, user_id=member, channel_id=channel)
    assert no.content.startswith(f"Only the person who asked for job {second}")
    yes = await command(fake, "cancel", {"job": second}, user_id=world.admin_id, channel_id=channel)
    assert yes.content == f"Job {second} is cancelled."

    # the running one is cancelled with the Cancel button on its progress message
    progress = await fake.wait_for(lambda: progress_of(fake, channel, first), 5)
    click = await fake.click(progress.id, f"animabot:cancel:{first}", user_id=member)
    [answer] = await click.wait_followups(1, 10)
    assert answer.ephemeral and answer.content in (f"Cancelling job {first}…", f"Job {first} is cancelled.")
    job = await wait_job(bot, first, lambda j: j.status.finished and j.result_post_id is not None)
    assert job.status is JobStatus.CANCELLED and job.frames_done < 12
    await fake.wait_for(lambda: "Cancelled" in progress.content and progress.components == [], 10)
    second_progress = await fake.wait_for(lambda: progress_of(fake, channel, second), 5)
    await fake.wait_for(lambda: "Cancelled" in second_progress.content, 10)
    assert await store.active_jobs() == []

    nothing = await command(fake, "cancel", user_id=member, channel_id=channel)
    assert nothing.content == "You have no queued or running job here."


async def test_an_unexpected_error_is_logged_with_a_reference_and_the_user_gets_an_apology(fake, world, bot,
                                                                                          monkeypatch, caplog):  # fmt: skip
    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(bot.bot.store, "usage", broken)
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        answer = await command(fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id)
    [interaction] = [i for i in fake.interactions if i.name == "animate"]
    assert answer.content.startswith("Sorry, something went wrong") and str(interaction.id) in answer.content
    assert "database on fire" not in answer.content
    [record] = [r for r in caplog.records if "/animate failed" in r.getMessage()]
    assert str(interaction.id) in record.getMessage() and record.exc_info[1].args == ("database on fire",)


async def test_a_delivery_bug_is_logged_with_the_job_id_and_the_channel_gets_an_apology(fake, world, bot,
                                                                                       monkeypatch, caplog):  # fmt: skip
    async def broken(source, limit):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(progress_module, "fit", broken)
    with caplog.at_level(logging.ERROR, logger="bot.progress"):
        answer = await command(fake, "animate", {"prompt": "a cat"}, user_id=world.member_id, channel_id=world.channel_id)
        job_id = job_id_in(answer.content)
        notice = await fake.wait_for(
            lambda: next((m for m in fake.bot_messages(world.channel_id) if "Sorry" in m.content), None), 30
        )
    assert f"reference {job_id}" in notice.content and "disk on fire" not in notice.content
    assert any(f"job {job_id}: progress or delivery failed" in r.getMessage() for r in caplog.records)

"""/mux is held to the member's limits and to their own videos (issue 20, defect 4): it counts against
the cooldown, the daily quota and the queue like a render, and takes another member's video only
from a member with Manage Messages. (16 simultaneous /mux requests: tests/bot/test_atomic_limits.py.)"""

from __future__ import annotations

from support.botharness import command, job_id_in
from support.fakediscord.models import MANAGE_MESSAGES
from support.media import write_wav
from support.waiting import wait_result

from bot.guild_limits import set_limits
from engine.store.jobs import JobKind


async def finished_video(fake, channel_id: int, user_id: int) -> int:
    answer = await command(fake, "animate", {"prompt": "a drum"}, user_id=user_id, channel_id=channel_id)
    job_id = job_id_in(answer.content)
    await wait_result(fake, channel_id, job_id)
    return job_id


async def mux(fake, channel_id: int, user_id: int, wav: bytes, job: int | None = None):
    options = {} if job is None else {"job": job}
    return await command(fake, "mux", options, user_id=user_id, channel_id=channel_id,
                         attachments={"audio": ("tone.wav", wav)})  # fmt: skip


async def mux_jobs(store) -> list:
    return [job for job in await store.active_jobs() if job.kind is JobKind.MUX]


async def test_a_member_on_cooldown_cannot_mux(fake, world, bot, tmp_path):
    store = bot.bot.store
    await finished_video(fake, world.channel_id, world.member_id)
    await set_limits(store, world.guild_id, defaults=bot.bot.config.limits, cooldown_seconds=3600)
    wav = write_wav(tmp_path / "tone.wav").read_bytes()
    refused = await mux(fake, world.channel_id, world.member_id, wav)
    assert refused.content.startswith("Please wait ") and refused.content.endswith(" between requests.")
    assert await mux_jobs(store) == []
    assert not any((bot.bot.config.data_dir / "uploads").glob("*"))  # refused before the download


async def test_a_member_over_the_daily_quota_cannot_mux(fake, world, bot, tmp_path):
    store = bot.bot.store
    await finished_video(fake, world.channel_id, world.member_id)
    await set_limits(store, world.guild_id, defaults=bot.bot.config.limits, daily_quota=1)
    refused = await mux(fake, world.channel_id, world.member_id, write_wav(tmp_path / "tone.wav").read_bytes())
    assert refused.content.startswith("You have used your 1 render for today")
    assert await mux_jobs(store) == []


async def test_a_member_cannot_mux_another_members_video(fake, world, bot, tmp_path):
    theirs = await finished_video(fake, world.channel_id, world.admin_id)
    refused = await mux(fake, world.channel_id, world.member_id, write_wav(tmp_path / "tone.wav").read_bytes(), theirs)
    assert refused.content == f"Job {theirs} is another member's video; /mux one of your own videos."
    assert await mux_jobs(bot.bot.store) == []


async def test_a_member_with_manage_messages_may_mux_anyones_video(fake, world, bot, tmp_path):
    theirs = await finished_video(fake, world.channel_id, world.member_id)
    moderator = fake.add_member(world.guild_id, name="moderator", permissions=MANAGE_MESSAGES)
    answer = await mux(fake, world.channel_id, moderator, write_wav(tmp_path / "tone.wav").read_bytes(), theirs)
    mux_id = job_id_in(answer.content)
    await wait_result(fake, world.channel_id, mux_id)
    job = await bot.bot.store.get(mux_id)
    assert (job.user_id, job.parent_id, job.status.value) == (moderator, theirs, "done")

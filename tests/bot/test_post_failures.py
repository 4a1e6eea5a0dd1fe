"""Posts Discord refuses for good, end to end: the bot's Attach Files taken away mid-render
(403/50013) and the channel deleted mid-render (404/10003). Neither is retried; the member is
told where they can read it; the video is kept and ``/deliver`` posts it once that is fixed."""

from __future__ import annotations

from pathlib import Path

from support.botharness import command, job_id_in
from support.fakediscord import FakeDiscord, MessageRecord, World
from support.fakediscord.models import ATTACH_FILES
from support.waiting import result_of, until, wait_result

from engine.store.jobs import JobStatus
from engine.video.read import probe


def uploads_refused(fake: FakeDiscord, channel_id: int, status: int) -> int:
    """How many uploads (posts with files) to ``channel_id`` Discord answered with ``status``."""
    path = rf"/channels/{channel_id}/messages$"
    return sum(1 for r in fake.requests("POST", path) if r.files and r.status == status)


async def held(running, job_id: int) -> str:
    """Wait until the bot holds ``job_id`` back; return why it says it does."""
    return (await until(lambda: running.bot.store.held_jobs(), 60, f"job {job_id} held"))[job_id]


async def animate(fake: FakeDiscord, world: World, channel_id: int):
    interaction = await fake.slash("animate", {"prompt": "a paper boat"}, user_id=world.member_id,
                                   channel_id=channel_id)  # fmt: skip
    [answer] = await interaction.wait_followups(1, 15)
    return interaction, job_id_in(answer.content)


# -- 403/50013: no Attach Files ---------------------------------------------------------------------
async def test_missing_attach_files_is_not_retried_and_the_member_is_told_through_the_follow_up(fake, world, bot):
    channel = world.channel_id
    interaction, job_id = await animate(fake, world, channel)
    await fake.deny(channel, ATTACH_FILES)  # someone takes the permission away while it renders

    reason = await held(bot, job_id)
    [_, notice] = await interaction.wait_followups(2, 15)
    assert notice.ephemeral and notice.allowed_mentions == {"parse": []}
    assert notice.content.startswith(
        f"I can't attach files in <#{channel}> — ask a server admin to give me the Attach Files permission there."
    )
    assert f"`/deliver job:{job_id}`" in notice.content and "kept for 7 days" in notice.content
    assert reason in notice.content
    assert uploads_refused(fake, channel, 403) == 1  # once: no retry storm
    job = await bot.bot.store.get(job_id)
    assert job.status is JobStatus.DONE and job.result_post_id is None and Path(job.result_path).exists()
    assert result_of(fake, channel, job_id) is None


async def test_a_remix_refused_for_good_is_told_through_the_follow_up_of_its_form(fake, world, bot):
    """The Remix form's "queued" answer keeps the form's interaction, as every queued answer does."""
    channel = world.channel_id
    _, job_id = await animate(fake, world, channel)
    result = await wait_result(fake, channel, job_id)
    opened = await fake.click(result.id, f"animabot:remix:{job_id}", user_id=world.member_id)
    await opened.wait_response(10)
    form = await fake.submit_modal(opened, {"prompt": "a paper boat at night"})
    [queued] = await form.wait_followups(1, 15)
    remix_id = job_id_in(queued.content)
    await fake.deny(channel, ATTACH_FILES)

    reason = await held(bot, remix_id)
    [_, notice] = await form.wait_followups(2, 15)
    assert notice.ephemeral and notice.content.startswith(reason)
    assert f"`/deliver job:{remix_id}`" in notice.content
    assert not [m for m in fake.bot_messages(channel) if f"<@{world.member_id}>" in m.content and reason in m.content]


async def test_a_held_video_is_listed_by_queue_and_posted_once_by_deliver(fake, world, bot, tmp_path):
    channel = world.channel_id
    _, job_id = await animate(fake, world, channel)
    await fake.deny(channel, ATTACH_FILES)
    await held(bot, job_id)
    listed = await command(fake, "queue", user_id=world.member_id, channel_id=channel)
    assert f"job {job_id}: kept, not posted" in listed.content

    await fake.deny(channel, 0)  # an admin gives the permission back
    answer = await command(fake, "deliver", {"job": job_id}, user_id=world.member_id, channel_id=channel)
    assert answer.content == f"Posted job {job_id}'s video in <#{channel}>."
    # the videos (not the progress message, which still shows its last preview frame when it had one)
    posted = [m for m in fake.bot_messages(channel) if any(a.filename.endswith(".mp4") for a in m.attachments)]
    assert [m.id for m in posted] == [(await bot.bot.store.get(job_id)).result_post_id]
    video = tmp_path / posted[0].attachments[0].filename
    video.write_bytes(posted[0].attachments[0].data)
    assert probe(video).frames == 2
    assert await bot.bot.store.held_jobs() == {}
    again = await command(fake, "deliver", {"job": job_id}, user_id=world.member_id, channel_id=channel)
    assert again.content == f"Job {job_id}'s video is posted already; /animate renders a new one."


async def test_deliver_is_for_the_requester_or_moderators(fake, world, bot):
    _, job_id = await animate(fake, world, world.channel_id)
    await fake.deny(world.channel_id, ATTACH_FILES)
    await held(bot, job_id)
    await fake.deny(world.channel_id, 0)
    answer = await command(fake, "deliver", {"job": job_id}, user_id=world.admin_id, channel_id=world.channel_id)
    assert answer.content.startswith(f"Only the person who asked for job {job_id}")


# -- 404/10003: the channel deleted -------------------------------------------------------------------
async def test_a_deleted_channel_is_not_retried_and_the_member_is_told_by_dm(fake, world, bot):
    renders = fake.add_channel(world.guild_id, "renders")
    _, job_id = await animate(fake, world, renders)
    await fake.delete_channel(renders)

    reason = await held(bot, job_id)
    assert reason == f"The channel <#{renders}> was deleted before I could post there."
    dm: MessageRecord = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages() if getattr(fake.state.channels.get(m.channel_id), "type", 0) == 1), None),
        15, "a DM to the member",
    )  # fmt: skip
    assert fake.state.channels[dm.channel_id].recipient_ids == [world.member_id]
    assert reason in dm.content and f"`/deliver job:{job_id}`" in dm.content
    assert uploads_refused(fake, renders, 404) == 1

    answer = await command(fake, "deliver", {"job": job_id}, user_id=world.member_id, channel_id=world.channel_id)
    assert answer.content == f"Posted job {job_id}'s video in <#{world.channel_id}>."
    assert result_of(fake, world.channel_id, job_id) is not None


async def test_the_permissions_are_checked_when_a_render_is_queued(fake, world, bot):
    await fake.deny(world.channel_id, ATTACH_FILES)
    answer = await command(fake, "animate", {"prompt": "a kite"}, user_id=world.member_id, channel_id=world.channel_id)
    assert answer.content == (
        f"I can't attach files in <#{world.channel_id}> — ask a server admin to give me the Attach Files "
        "permission there."
    )
    assert await bot.bot.store.active_jobs() == []

"""End to end under faults: 429s on progress edits, gateway reconnects and invalid sessions, and
videos over the upload limit (the guild's, or Discord's own 413)."""

from __future__ import annotations

from bot.settings import set_limits
from support.botharness import command, job_id_in, progress_of, wait_job, wait_result
from engine.queue.jobs import JobStatus
from engine.video.read import probe


async def test_a_429_on_the_progress_edit_and_gateway_reconnects_mid_render_are_survived(fake, world, bot):
    channel = world.channel_id
    rule = fake.inject_429("PATCH", r"/channels/\d+/messages/\d+$", count=1, retry_after=0.5)
    options = {"prompt": "waves on a beach", "frames": 8, "size": "square"}
    job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)).content)

    await wait_job(bot, job_id, lambda j: j.frames_done >= 1)
    await fake.reconnect()  # op 7: the client resumes on resume_gateway_url
    await fake.invalid_session()  # op 9: a fresh IDENTIFY
    assert (await bot.bot.store.get(job_id)).status is JobStatus.RUNNING, "the faults came mid-render"

    result = await wait_result(fake, channel, job_id)
    job = await bot.bot.store.get(job_id)
    assert job.status is JobStatus.DONE and probe(job.result_path).frames == 8
    progress = progress_of(fake, channel, job_id)
    await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
    assert rule.hits == 1
    assert [r.status for r in fake.requests("PATCH", r"/channels/\d+/messages/\d+$")][0] == 429
    gaps = [b.at - a.at for a, b in zip(progress.revisions, progress.revisions[1:])]
    assert all(gap >= 2.9 for gap in gaps), gaps
    assert fake.gateway.resumes >= 1 and fake.gateway.identifies >= 2

    # the reconnected bot still hears reactions and answers commands
    await fake.react(channel, result.id, "🔄", user_id=world.member_id)
    await wait_job(bot, job_id + 1, lambda j: j.parent_id == job_id, timeout=10)
    answer = await command(fake, "queue", user_id=world.member_id, channel_id=channel)
    assert f"job {job_id + 1}" in answer.content


async def test_a_video_over_the_guild_upload_limit_is_re_encoded_to_fit(fake, world, bot, tmp_path):
    channel = world.channel_id
    limit_mib = 0.03
    await command(fake, "limits set", {"upload_limit_mib": limit_mib}, user_id=world.admin_id, channel_id=channel)
    options = {"prompt": "fireworks over a city", "frames": 4, "size": "square"}
    job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)).content)

    result = await wait_result(fake, channel, job_id)
    job = await bot.bot.store.get(job_id)
    original = job.result_path
    [video] = result.attachments
    assert len(open(original, "rb").read()) > limit_mib * 2**20 >= video.size
    assert "re-encoded" in result.content
    uploaded = tmp_path / video.filename
    uploaded.write_bytes(video.data)
    assert video.filename == f"animabot-{job_id}-seed{job.seed}.mp4" and probe(uploaded).frames == 4


async def test_discords_413_gets_a_smaller_re_encode_and_an_impossible_fit_is_explained(fake, world, bot):
    channel = world.channel_id
    options = {"prompt": "a forest in autumn", "frames": 4, "size": "square"}
    fake.upload_limit = 150_000  # Discord refuses more than the bot knew (10 MiB by default)
    job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)).content)
    result = await wait_result(fake, channel, job_id)
    assert result.attachments[0].size <= 150_000
    refused = [r for r in fake.requests("POST", r"/channels/\d+/messages$") if r.status == 413]
    assert len(refused) == 1  # one refusal, then one smaller re-encode that fits
    job = await bot.bot.store.get(job_id)
    assert len(open(job.result_path, "rb").read()) > 150_000 and probe(job.result_path).frames == 4

    # a limit nothing can fit under: the user is told why instead
    await set_limits(bot.bot.store, world.guild_id, defaults=bot.bot.config.limits, upload_limit_bytes=2_000)
    job_id = job_id_in((await command(fake, "animate", {"prompt": "a tiny cat"}, user_id=world.member_id,
                                      channel_id=channel)).content)  # fmt: skip
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    notice = fake.message(job.result_post_id)
    assert "could not be posted" in notice.content and "cannot fit under" in notice.content
    assert notice.attachments == []


async def test_a_second_413_is_final_and_explained(fake, world, bot):
    channel = world.channel_id
    fake.upload_limit = 20_000  # far below even the halved re-encode
    options = {"prompt": "a forest in autumn", "frames": 4, "size": "square"}
    job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)).content)
    job = await wait_job(bot, job_id, lambda j: j.result_post_id is not None)
    notice = fake.message(job.result_post_id)
    assert "could not be posted" in notice.content and "Discord refused it even at" in notice.content
    assert notice.attachments == []
    refused = [r for r in fake.requests("POST", r"/channels/\d+/messages$") if r.status == 413]
    assert len(refused) == 2  # the original and one smaller re-encode; no retries from full size

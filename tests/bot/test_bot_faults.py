"""End to end under faults: 429s on progress edits, gateway reconnects and invalid sessions (one
render, the module's ``survived`` fixture, asserted one behaviour per test), and videos over the
upload limit (the guild's, or Discord's own 413)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from support.botharness import command, job_id_in, make_config, progress_of, start
from support.fakediscord import FakeDiscord, MessageRecord, World, fake_discord
from support.waiting import wait_job, wait_result

from bot.cli.run import Running
from bot.guild_limits import set_limits
from engine.store.jobs import Job, JobStatus
from engine.video.read import probe


@dataclass
class Survived:
    fake: FakeDiscord
    world: World
    running: Running
    rule: object  # the injected 429
    status_after_faults: JobStatus  # the job's status right after the faults
    job: Job  # as stored once its video is posted
    result: MessageRecord
    progress: MessageRecord


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def survived(tmp_path_factory):
    """A render hit by a 429 on a progress edit, a gateway reconnect and an invalid session mid-render."""
    async with fake_discord() as fake:
        world = fake.default_world()
        running = await start(make_config(tmp_path_factory.mktemp("faults") / "data", fake, world))
        try:
            channel = world.channel_id
            rule = fake.inject_429("PATCH", r"/channels/\d+/messages/\d+$", count=1, retry_after=0.5)
            options = {"prompt": "waves on a beach", "frames": 8, "size": "square"}
            answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)
            job_id = job_id_in(answer.content)
            await wait_job(running, job_id, lambda j: j.frames_done >= 1)
            await fake.reconnect()  # op 7: the client resumes on resume_gateway_url
            await fake.invalid_session()  # op 9: a fresh IDENTIFY
            status = (await running.bot.store.get(job_id)).status
            result = await wait_result(fake, channel, job_id)
            job = await running.bot.store.get(job_id)
            progress = progress_of(fake, channel, job_id)
            await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
            yield Survived(fake, world, running, rule, status, job, result, progress)
        finally:
            await running.stop()
        assert fake.errors == []


@pytest.mark.asyncio(loop_scope="module")
async def test_the_faults_came_mid_render_and_the_video_is_still_delivered(survived):
    assert survived.status_after_faults is JobStatus.RUNNING
    assert survived.job.status is JobStatus.DONE and probe(survived.job.result_path).frames == 8


@pytest.mark.asyncio(loop_scope="module")
async def test_a_429_on_a_progress_edit_is_waited_out_once(survived):
    assert survived.rule.hits == 1
    assert [r.status for r in survived.fake.requests("PATCH", r"/channels/\d+/messages/\d+$")][0] == 429


@pytest.mark.asyncio(loop_scope="module")
async def test_progress_edits_stay_3_s_apart_through_a_429(survived):
    gaps = [b.at - a.at for a, b in zip(survived.progress.revisions, survived.progress.revisions[1:])]
    assert all(gap >= 2.9 for gap in gaps), gaps


@pytest.mark.asyncio(loop_scope="module")
async def test_the_client_resumed_and_identified_again(survived):
    assert survived.fake.gateway.resumes >= 1 and survived.fake.gateway.identifies >= 2


@pytest.mark.asyncio(loop_scope="module")
async def test_the_reconnected_bot_still_hears_reactions_and_answers_commands(survived):
    fake, world, job_id = survived.fake, survived.world, survived.job.id
    await fake.react(world.channel_id, survived.result.id, "🔄", user_id=world.member_id)
    await wait_job(survived.running, job_id + 1, lambda j: j.parent_id == job_id, timeout=10)
    answer = await command(fake, "queue", user_id=world.member_id, channel_id=world.channel_id)
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
    assert Path(original).stat().st_size > limit_mib * 2**20 >= video.size
    assert "re-encoded" in result.content
    uploaded = tmp_path / video.filename
    uploaded.write_bytes(video.data)
    assert video.filename == f"animabot-{job_id}-seed{job.seed}.mp4" and probe(uploaded).frames == 4


async def test_discords_413_gets_one_smaller_re_encode_that_fits(fake, world, bot):
    channel = world.channel_id
    options = {"prompt": "a forest in autumn", "frames": 4, "size": "square"}
    fake.upload_limit = 150_000  # Discord refuses more than the bot knew (10 MiB by default)
    job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id, channel_id=channel)).content)
    result = await wait_result(fake, channel, job_id)
    assert result.attachments[0].size <= 150_000
    refused = [r for r in fake.requests("POST", r"/channels/\d+/messages$") if r.status == 413]
    assert len(refused) == 1  # one refusal, then one smaller re-encode that fits
    job = await bot.bot.store.get(job_id)
    assert Path(job.result_path).stat().st_size > 150_000 and probe(job.result_path).frames == 4


async def test_a_limit_nothing_fits_under_is_explained(fake, world, bot):
    await set_limits(bot.bot.store, world.guild_id, defaults=bot.bot.config.limits, upload_limit_bytes=2_000)
    job_id = job_id_in((await command(fake, "animate", {"prompt": "a tiny cat"}, user_id=world.member_id,
                                      channel_id=world.channel_id)).content)  # fmt: skip
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

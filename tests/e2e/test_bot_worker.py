"""Start-up: a bot without a runtime delivers what a separate worker renders (the store is the
contract), also across a restart of the bot alone, and a bad token is a readable error."""

from __future__ import annotations

import dataclasses

import pytest
from support.botharness import command, job_id_in, progress_of, start
from support.waiting import wait_job, wait_result, wait_stored

from engine.errors import UserError
from engine.runtime.worker import Runtime
from engine.store.jobs import JobStatus
from engine.store.store import JobStore


async def test_the_bot_delivers_jobs_rendered_by_a_worker_on_its_own_store_connection(fake, world, config):
    worker_store = await JobStore.open(config.db_path)  # as `animabot worker` would
    worker = Runtime(config, worker_store, worker="worker-1")
    await worker.start()
    running = await start(config, with_runtime=False)
    try:
        assert running.bot.runtime is None
        answer = await command(fake, "animate", {"prompt": "a paper boat", "frames": 3}, user_id=world.member_id,
                               channel_id=world.channel_id)  # fmt: skip
        job_id = job_id_in(answer.content)
        result = await wait_result(fake, world.channel_id, job_id)
        job = await wait_job(running, job_id, lambda j: j.result_post_id == result.id)
        assert job.status is JobStatus.DONE and job.worker == "worker-1"
    finally:
        await running.stop()
        await worker.stop()
        await worker_store.close()


async def test_a_rejected_token_is_a_readable_error_and_nothing_is_left_running(fake, world, config):
    bad = dataclasses.replace(config, discord=dataclasses.replace(config.discord, token="wrong"))
    with pytest.raises(UserError, match="Discord rejected the bot token"):
        await start(bad)
    missing = dataclasses.replace(config, discord=dataclasses.replace(config.discord, token=""))
    with pytest.raises(UserError, match="DISCORD_TOKEN"):
        await start(missing)
    assert fake.gateway.identifies == 0


async def test_a_job_finished_while_the_bot_was_down_loses_its_stale_preview(fake, world, config):
    # the bot stops with a preview on the progress message; the worker finishes the job meanwhile
    worker_store = await JobStore.open(config.db_path)
    worker = Runtime(config, worker_store, worker="worker-1")
    await worker.start()
    try:
        running = await start(config, with_runtime=False)
        try:
            options = {"prompt": "a paper plane", "frames": 8, "steps": 4, "size": "square"}  # stopped mid-render
            job_id = job_id_in((await command(fake, "animate", options, user_id=world.member_id,
                                              channel_id=world.channel_id)).content)  # fmt: skip
            progress = await fake.wait_for(lambda: progress_of(fake, world.channel_id, job_id), 30)
            await fake.wait_for(lambda: progress.attachments, 30, "a preview on the progress message")
        finally:
            await running.stop()
        await wait_stored(worker_store, job_id, lambda j: j.status is JobStatus.DONE)  # rendered meanwhile

        running = await start(config, with_runtime=False)
        try:
            await wait_result(fake, world.channel_id, job_id)
            await fake.wait_for(lambda: "Done" in progress.content, 10, "the final progress edit")
            assert progress.attachments == [], "the preview from before the restart is dropped"
        finally:
            await running.stop()
    finally:
        await worker.stop()
        await worker_store.close()

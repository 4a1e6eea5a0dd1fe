"""Waiting in tests: until the store holds a job in some state, or the fake Discord has its video.

One polling loop (:func:`until`) serves them all, so no test needs its own ``sleep`` loop; the
timeouts are upper bounds for a slow CPU, never what a passing test waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.cli.run import Running
from engine.request.safety import SPOILER_PREFIX
from engine.store.jobs import Job
from engine.store.store import JobStore
from support.fakediscord import FakeDiscord, MessageRecord

RENDER_TIMEOUT = 90.0
POLL_SECONDS = 0.05

T = TypeVar("T")


async def until(fetch: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Call ``fetch`` until it returns something truthy and return that; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await fetch()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never happened")
        await asyncio.sleep(POLL_SECONDS)


async def wait_stored(store: JobStore, job_id: int, predicate, timeout: float = RENDER_TIMEOUT) -> Job:
    """Poll ``store`` until ``predicate(job)`` holds; return that job."""
    job: Job | None = None

    async def fetch() -> Job | None:
        nonlocal job
        job = await store.get(job_id)
        return job if job is not None and predicate(job) else None

    try:
        return await until(fetch, timeout, f"job {job_id} reaching the expected state")
    except TimeoutError:
        raise TimeoutError(f"job {job_id} never reached the expected state; last: {job}") from None


async def wait_job(running: Running, job_id: int, predicate, timeout: float = RENDER_TIMEOUT) -> Job:
    """Poll the bot's store until ``predicate(job)`` holds; return that job."""
    return await wait_stored(running.bot.store, job_id, predicate, timeout)


def result_of(fake: FakeDiscord, channel_id: int, job_id: int) -> MessageRecord | None:
    """The bot's message carrying job ``job_id``'s video, if posted (as a spoiler too: ``SPOILER_animabot-…``)."""
    prefix = f"animabot-{job_id}-"
    for message in fake.bot_messages(channel_id, include_deleted=True):
        if any(
            a.filename.removeprefix(SPOILER_PREFIX).startswith(prefix)
            and a.filename.endswith((".mp4", ".gif", ".webp"))
            for a in message.attachments
        ):
            return message
    return None


async def wait_result(
    fake: FakeDiscord, channel_id: int, job_id: int, timeout: float = RENDER_TIMEOUT
) -> MessageRecord:
    """Wait until job ``job_id``'s video is posted in ``channel_id``; return that message."""
    return await fake.wait_for(lambda: result_of(fake, channel_id, job_id), timeout, f"the video of job {job_id}")

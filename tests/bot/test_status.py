"""``/status`` on the loopback Discord (issue 23): every member sees the queue, the median wait and
the workers alive with their speed; only a member with Manage Server also sees this server's day."""

from __future__ import annotations

import re

from support.botharness import command, job_id_in
from support.waiting import wait_job, wait_result


async def test_status_shows_the_queue_waits_and_workers_and_the_days_use_only_to_managers(fake, world, bot):
    answer = await command(fake, "animate", {"prompt": "a lantern", "frames": 3}, user_id=world.member_id,
                           channel_id=world.channel_id)  # fmt: skip
    job_id = job_id_in(answer.content)
    result = await wait_result(fake, world.channel_id, job_id)
    await wait_job(bot, job_id, lambda j: j.result_post_id == result.id)

    member = (await command(fake, "status", user_id=world.member_id, channel_id=world.channel_id)).content
    lines = member.splitlines()
    assert lines[0] == "**Queue:** 0 waiting, 0 rendering"
    assert re.fullmatch(r"\*\*Median wait\*\* over the last hour: \d+ s", lines[1])
    assert lines[2] == "**Workers alive:** 1"
    assert re.fullmatch(r"• worker 1: \d+\.\d\d s/frame", lines[3])
    assert len(lines) == 4 and "This server" not in member

    admin = (await command(fake, "status", user_id=world.admin_id, channel_id=world.channel_id)).content
    assert admin.splitlines()[:-1] == lines  # the same view, then the day
    assert admin.splitlines()[-1] == "**This server today:** 1 render, 3 frames, 1 member"

"""Info and Remix end to end through the loopback Discord, across a restart: the buttons on a result,
the Remix form (a modal, submitted as interaction type 5), and the message context menu on a
re-uploaded video, whose recipe is read from the file itself."""

from __future__ import annotations

from support.botharness import command, job_id_in, modal_inputs, start
from support.waiting import wait_job, wait_result

from engine.store.jobs import JobKind, JobStatus
from engine.video.read import decode_frames, read_recipe


async def test_info_and_remix_by_button_and_context_menu_after_a_restart(fake, world, config, tmp_path):
    channel, member = world.channel_id, world.member_id
    options = {"prompt": "a paper boat", "seed": 11, "format": "gif", "loop": "pingpong", "smooth": 4}

    # 1. a GIF, smoothed ×4 asked: 8 fps × 4 is over the server's 24 fps, so ×2, and the member is told
    running = await start(config)
    try:
        answer = await command(fake, "animate", options, user_id=member, channel_id=channel)
        assert "Smoothing lowered from ×4 to ×2" in answer.content
        job_id = job_id_in(answer.content)
        result = await wait_result(fake, channel, job_id)
        await wait_job(running, job_id, lambda j: j.result_post_id is not None)
    finally:
        await running.stop()
    [upload] = result.attachments
    assert upload.filename == f"animabot-{job_id}-seed11.gif" and upload.data.startswith(b"GIF89a")
    posted = tmp_path / upload.filename
    posted.write_bytes(upload.data)
    assert len(decode_frames(posted)) == 3  # 2 frames, pingpong 2, smoothed ×2: 3
    recipe = read_recipe(posted)
    assert (recipe["job"], recipe["params"]["seed"], recipe["params"]["smooth"]) == (job_id, 11, 2)
    assert set(result.custom_ids()) >= {f"animabot:{a}:{job_id}" for a in ("reroll", "info", "remix")}

    running = await start(config)  # everything below runs on buttons and forms posted before this restart
    try:
        # 2. Info: the recipe, privately, with a line to copy
        info = await fake.click(result.id, f"animabot:info:{job_id}", user_id=member)
        [shown] = await info.wait_followups(1, 10)
        assert shown.ephemeral and f"Recipe of job {job_id}" in shown.content
        assert "```\nanimabot render 'a paper boat' " in shown.content and "--seed 11" in shown.content

        # 3. Remix: a modal prefilled with the texts; the submission queues the edited prompt, same seed
        opened = await fake.click(result.id, f"animabot:remix:{job_id}", user_id=member)
        form = await opened.wait_response(10)
        assert form.type == 9 and form.data["title"] == f"Remix job {job_id}"
        assert modal_inputs(form)["prompt"] == "a paper boat" and '"seed": 11' in modal_inputs(form)["settings"]
        sent = await fake.submit_modal(opened, {"prompt": "a paper boat at night"})
        assert (await sent.wait_response(10)).type == 5
        [queued] = await sent.wait_followups(1, 10)
        remix_id = job_id_in(queued.content)
        assert f"remix of job {job_id}, seed 11" in queued.content
        remix = await running.bot.store.get(remix_id)
        assert (remix.kind, remix.parent_id, remix.seed) == (JobKind.ANIMATE, job_id, 11)
        assert (remix.params.prompt, remix.params.format, remix.params.loop) == (
            "a paper boat at night",
            "gif",
            "pingpong",
        )
        remix_result = await wait_result(fake, channel, remix_id)
        assert f"remix of job {job_id}" in remix_result.content

        # 4. the context menu on someone's re-upload of the video: the recipe comes from the file
        repost = await fake.user_message(
            channel, "look", user_id=world.admin_id, attachments=[("boat.gif", upload.data)]
        )
        menu = await fake.message_command("Remix", repost.id, user_id=world.admin_id)
        form = await menu.wait_response(10)
        assert form.type == 9 and form.data["title"] == "Remix this video"
        assert modal_inputs(form)["prompt"] == "a paper boat"
        sent = await fake.submit_modal(menu, {"negative_prompt": "blurry"})
        [queued] = await sent.wait_followups(1, 10)
        again = await running.bot.store.get(job_id_in(queued.content))
        assert (again.user_id, again.parent_id, again.seed, again.params.negative_prompt) == (
            world.admin_id,
            job_id,
            11,
            "blurry",
        )
        await wait_job(running, again.id, lambda j: j.status is JobStatus.DONE and j.result_post_id is not None)

        # a message without a video gets one private sentence
        plain = await fake.user_message(channel, "no video here", user_id=world.admin_id)
        refused = await fake.message_command("Remix", plain.id, user_id=world.admin_id)
        answer = await refused.wait_response(10)
        assert answer.type == 4 and answer.ephemeral and "no MP4, GIF or WebP" in answer.data["content"]
        assert fake.errors == []
    finally:
        await running.stop()

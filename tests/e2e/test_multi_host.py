"""Many hosts, nothing shared but PostgreSQL: one bot process (``animabot run --no-engine``) against
the loopback Discord, three ``animabot worker`` processes, each with a data folder of its own.

Six renders from three members; one worker is SIGKILLed mid-render (its job resumes on another from
its last saved frame), one is SIGSTOPped past its lease and then SIGCONTed (its late writes are
refused), and the database restarts once. Every job is delivered exactly once, with every frame;
the bot process never loaded torch or diffusers. One of the six starts from a picture: Remix and
Re-roll on its video start from that picture, found in the database with the bot host's copy
removed, while the workers run (which render them) and again once they are gone. Then, with every
worker gone and the bot host's cached copies removed, Info, ``/mux`` and ``/deliver`` on the bot
host reach a video a worker rendered: through the database, never a path on the worker's host.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from support.botharness import command, job_id_in
from support.media import write_wav
from support.waiting import result_of, until

from engine.request.picture import decode_png, encode_png
from engine.store.jobs import JobStatus
from engine.store.pictures import picture_blob_key
from engine.store.store import JobStore
from engine.video.read import first_frame, probe

FRAMES = 4
LEASE = 3.0
PICTURE = encode_png(np.kron(np.eye(8, dtype=np.uint8)[:, :, None] * 200, np.ones((8, 8, 3), np.uint8)))  # 64×64

# Dumps which heavy modules the bot process loaded, when it exits (SIGTERM ends it cleanly).
BOT = """
import atexit, sys
def dump():
    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers'))
    open(sys.argv[1], 'w').write(' '.join(heavy) or '-')
atexit.register(dump)
from bot.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _config(folder: Path, url: str, fake, world) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f'data_dir = "{folder / "data"}"\n'
        f'[engine]\nmodel = "test-tiny"\ndevice = "cpu"\ncompile = false\nmax_batch = 2\n'
        f"[render]\nframes = {FRAMES}\nfps = 8\nsteps = 1\nwidth = 64\nheight = 64\n"
        f"[limits]\nmax_frames = 12\ndaily_quota = 50\nmax_queued_per_user = 5\ncooldown_seconds = 0\n"
        f'[discord]\ntoken = "{fake.token}"\nguild_ids = [{world.guild_id}]\n'
        f'api_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"\n'
        f'[store]\nurl = "{url}"\nlease_seconds = {LEASE}\n',
        encoding="utf-8",
    )
    return path


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env)


async def test_three_workers_one_bot_and_a_database_survive_a_kill_a_pause_and_a_restart(
    fake, world, pg_cluster, tmp_path
):
    url = pg_cluster.new_database()
    members = [world.member_id, fake.add_member(world.guild_id, name="m2"), fake.add_member(world.guild_id, name="m3")]
    store = await JobStore.open(url, data_dir=tmp_path / "test-data")  # the test's own view of the queue
    logs = {name: tmp_path / f"{name}.log" for name in ("bot", "w1", "w2", "w3")}
    bot_config = _config(tmp_path / "bot", url, fake, world)
    modules = tmp_path / "bot-modules.txt"
    bot = _spawn(["-c", BOT, str(modules), "--config", str(bot_config), "run", "--no-engine"], logs["bot"])
    workers = {
        name: _spawn(
            ["-m", "bot.cli.main", "--config", str(_config(tmp_path / name, url, fake, world)), "worker"], logs[name]
        )
        for name in ("w1", "w2", "w3")
    }
    try:
        await fake.wait_for(lambda: fake.sync_calls, 180, "the bot process to sync its commands")
        await fake.wait_ready(180)  # and identify on the gateway
        await until(lambda: _serving(logs, ("w1", "w2", "w3")), 300, "three workers serving")
        jobs = []
        for n in range(6):
            picture = {"image": ("boat.png", PICTURE, "image/png")} if n == 0 else {}  # job 0 starts from it
            answer = await command(fake, "animate", {"prompt": f"boat {n}"}, user_id=members[n % 3],
                                   channel_id=world.channel_id, timeout=20, attachments=picture)  # fmt: skip
            jobs.append(job_id_in(answer.content))

        # 1. a worker dies mid-render: its job resumes elsewhere from its last saved frame
        killed = await until(lambda: _running_with_frames(store, jobs), 120, "a job with a saved frame")
        victim = _worker_of(killed, workers)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(timeout=10)
        frames_at_kill = (await store.get(killed.id)).frames_done

        # 2. the database restarts (connections dropped); everyone reconnects
        await asyncio.to_thread(pg_cluster.restart)

        # 3. a worker is paused past its lease, then woken: its late writes are refused
        paused_job = await until(lambda: _running_on_live(store, jobs, workers), 120, "a running job")
        paused = _worker_of(paused_job, workers)
        workers[paused].send_signal(signal.SIGSTOP)
        await until(lambda: _reclaimed(store, paused_job), 60, "the paused worker's job claimed again")
        workers[paused].send_signal(signal.SIGCONT)

        done = await until(lambda: _all_delivered(store, jobs), 480, "every job delivered")
        await until(lambda: _logged(logs[paused], "lost its lease"), 30, "the woken worker to notice")

        # 4. Remix and Re-roll of the picture's video from the bot host, without its copy of the picture
        again = await _remix_and_reroll_on_the_bot_host(fake, world, store, done[0], tmp_path)
        rendered = await until(lambda: _all_delivered(store, again), 480, "the remix and the re-roll delivered")
        for job in rendered:
            video = tmp_path / f"{job.id}.mp4"
            video.write_bytes(result_of(fake, world.channel_id, job.id).attachments[0].data)
            stored = decode_png(await store.blobs.get(picture_blob_key(done[0].params.image_key)))
            assert np.abs(first_frame(video).astype(int) - stored).mean() < 3  # frame 0 is the picture

        # 5. the workers are gone, and the bot host's copies of the videos too: only the database has them
        for process in workers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(tmp_path / "bot" / "data" / "jobs", ignore_errors=True)
        await _remix_and_reroll_on_the_bot_host(fake, world, store, done[0], tmp_path)  # queued: the picture is found
        await _read_on_the_bot_host(fake, world, store, done[1], tmp_path)  # a clip from text: Info has its command
    finally:
        for process in [bot, *workers.values()]:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        for process in [bot, *workers.values()]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        await store.close()

    for job in done:
        assert job.status is JobStatus.DONE, (job.id, job.error)
        posts = [m for m in fake.bot_messages(world.channel_id) if m.attachments
                 and m.attachments[0].filename.startswith(f"animabot-{job.id}-")]  # fmt: skip
        assert len(posts) == 1, f"job {job.id} was posted {len(posts)} times"
        assert result_of(fake, world.channel_id, job.id).id == job.result_post_id
        video = tmp_path / f"{job.id}.mp4"
        video.write_bytes(posts[0].attachments[0].data)
        assert probe(video).frames == FRAMES
    resumed = next(job for job in done if job.id == killed.id)
    assert resumed.attempts >= 2 and resumed.worker != killed.worker and frames_at_kill >= 1
    text = {name: log.read_text(errors="replace") for name, log in logs.items()}
    rendered_after = [int(i) for name in text if name not in ("bot", victim)
                      for i in re.findall(rf"job {killed.id} frame (\d+) saved", text[name])]  # fmt: skip
    assert min(rendered_after) >= frames_at_kill, "the resumed job started over instead of from its saved frames"
    assert modules.read_text() == "-", f"the --no-engine bot loaded {modules.read_text()}"


async def _remix_and_reroll_on_the_bot_host(fake, world, store, job, tmp_path: Path) -> list[int]:
    """Remix (the form as it opens) and Re-roll ``job``, which started from a picture, with the bot
    host's copy of the picture removed; the two jobs queued, each starting from that picture."""
    shutil.rmtree(tmp_path / "bot" / "data" / "pictures", ignore_errors=True)
    result = result_of(fake, world.channel_id, job.id)
    opened = await fake.click(result.id, f"animabot:remix:{job.id}", user_id=job.user_id)
    assert (await opened.wait_response(20)).type == 9
    sent = await fake.submit_modal(opened, {"prompt": "a boat at night"})
    [remixed] = await sent.wait_followups(1, 20)
    clicked = await fake.click(result.id, f"animabot:reroll:{job.id}", user_id=job.user_id)
    [rerolled] = await clicked.wait_followups(1, 20)
    queued = [job_id_in(remixed.content), job_id_in(rerolled.content)]
    for new in queued:
        assert (await store.get(new)).params.image_key == job.params.image_key
    return queued


async def _read_on_the_bot_host(fake, world, store, job, tmp_path: Path) -> None:
    """Info, /mux and /deliver on ``job``'s video from the bot host, which never had it but through the database."""
    cache = tmp_path / "bot" / "data" / "jobs" / str(job.id)
    result = result_of(fake, world.channel_id, job.id)
    info = await fake.click(result.id, f"animabot:info:{job.id}", user_id=job.user_id)
    [shown] = await info.wait_followups(1, 20)
    assert f"Recipe of job {job.id}" in shown.content and f"--seed {job.seed}" in shown.content
    assert list(cache.glob("*.mp4")), "Info read the recipe from the video, brought from the database"

    wav = write_wav(tmp_path / "tone.wav", seconds=1.0).read_bytes()
    muxed = await command(fake, "mux", {"job": job.id}, user_id=job.user_id, channel_id=world.channel_id,
                          attachments={"audio": ("tone.wav", wav)}, timeout=20)  # fmt: skip
    assert (await store.get(job_id_in(muxed.content))).parent_id == job.id  # queued: its video was found

    await store.hold(job.id, "the test holds it back")
    elsewhere = fake.add_channel(world.guild_id, "elsewhere")
    shutil.rmtree(cache)
    answer = await command(fake, "deliver", {"job": job.id}, user_id=job.user_id, channel_id=elsewhere, timeout=20)
    assert answer.content == f"Posted job {job.id}'s video in <#{elsewhere}>."
    video = tmp_path / f"{job.id}-delivered.mp4"
    video.write_bytes(result_of(fake, elsewhere, job.id).attachments[0].data)
    assert probe(video).frames == FRAMES


async def _serving(logs, names) -> bool:
    return all("serving the postgresql job store" in logs[n].read_text(errors="replace") for n in names)


async def _running_with_frames(store, jobs):
    for job_id in jobs:
        job = await store.get(job_id)
        if job.status is JobStatus.RUNNING and 1 <= job.frames_done < job.frames_total:
            return job
    return None


async def _running_on_live(store, jobs, workers):
    for job_id in jobs:
        job = await store.get(job_id)
        if job.status is JobStatus.RUNNING and job.worker and workers[_name(job.worker, workers)].poll() is None:
            return job
    return None


async def _reclaimed(store, before):
    job = await store.get(before.id)
    return job.lease_token > before.lease_token or job.status.finished


async def _all_delivered(store, jobs):
    states = [await store.get(job_id) for job_id in jobs]
    return states if all(job.status.finished and job.result_post_id for job in states) else None


async def _logged(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")


def _name(worker: str, workers: dict) -> str:
    pid = int(worker.rpartition(":")[2])
    return next(name for name, process in workers.items() if process.pid == pid)


def _worker_of(job, workers: dict) -> str:
    return _name(job.worker, workers)

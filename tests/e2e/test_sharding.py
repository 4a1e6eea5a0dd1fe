"""A sharded bot run as two processes (issue 23): ``animabot run --no-engine`` with ``[discord] shard_count = 2``
and ``shard_ids = [0]`` / ``[1]``, a guild on each shard, one SQLite store and an ``animabot worker``.

Each guild's commands reach only its shard's process (the loopback Discord routes by Discord's rule), and each
process delivers only its own guild's jobs: a job in each guild is delivered exactly once, by the process of its
shard. Then shard 1's process is killed while its job waits in the queue; the other process delivers its own
guild's later job but not that one, which is held in the store until shard 1's process is back and delivers it.
"""

from __future__ import annotations

import signal
from pathlib import Path

from support.botharness import command, job_id_in
from support.processes import spawn_animabot, stop
from support.waiting import result_of, until

from engine.store.jobs import JobStatus
from engine.store.store import JobStore

FRAMES = 2


def _config(folder: Path, data: Path, fake, guilds: list[int], shard: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f'data_dir = "{data}"\n'
        f'[engine]\nmodel = "test-tiny"\ndevice = "cpu"\ncompile = false\n'
        f"[render]\nframes = {FRAMES}\nfps = 8\nsteps = 1\nwidth = 64\nheight = 64\n"
        f"[limits]\ndaily_quota = 50\nmax_queued_per_user = 5\ncooldown_seconds = 0\n"
        f'[discord]\ntoken = "{fake.token}"\nguild_ids = {guilds}\nshard_count = 2\nshard_ids = [{shard}]\n'
        f'api_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"\n',
        encoding="utf-8",
    )
    return path


async def test_two_bot_processes_each_deliver_their_shards_jobs_once_and_a_killed_ones_after_its_restart(
    fake, tmp_path
):
    guilds, channels, members = [], [], []
    for shard in (0, 1):
        guild = fake.add_guild(f"Guild on shard {shard}", shard=(shard, 2))
        guilds.append(guild)
        channels.append(fake.add_channel(guild))
        members.append(fake.add_member(guild, name=f"member{shard}"))
    data = tmp_path / "data"
    configs = [_config(tmp_path / f"bot{shard}", data, fake, guilds, shard) for shard in (0, 1)]
    logs = {name: tmp_path / f"{name}.log" for name in ("bot0", "bot1", "worker")}
    bots = [spawn_animabot(configs[shard], ["run", "--no-engine"], logs[f"bot{shard}"]) for shard in (0, 1)]
    worker = spawn_animabot(configs[0], ["worker"], logs["worker"])
    processes = [*bots, worker]

    async def animate(shard: int, prompt: str) -> int:
        answer = await command(fake, "animate", {"prompt": prompt}, user_id=members[shard],
                               channel_id=channels[shard], timeout=30)  # fmt: skip
        return job_id_in(answer.content)

    async def delivered(job_id: int):
        job = await store.get(job_id)
        return job if job.result_post_id is not None else None

    async def ready(name: str) -> bool:
        return "logged in as" in logs[name].read_text(errors="replace")

    store = None
    try:
        for name in ("bot0", "bot1"):
            await until(lambda name=name: ready(name), 120, f"{name} ready")
        await until(lambda: _logged(logs["worker"], "serving the sqlite job store"), 120, "the worker serving")
        store = await JobStore.open(data / "animabot.sqlite3")
        shards = sorted(tuple(s.shard) for s in fake.gateway.sessions.values())
        assert shards == [(0, 2), (1, 2)], "each process identified its own shard"

        # 1. a job in each guild, each delivered by its own shard's process
        first = [await animate(shard, f"a lantern {shard}") for shard in (0, 1)]
        for job_id in first:
            await until(lambda job_id=job_id: delivered(job_id), 240, f"job {job_id} delivered")

        # 2. shard 1's process is killed while its guild's job waits; shard 0's process delivers only its own
        stop([worker])
        waiting = await animate(1, "a lantern while shard 1 is away")
        bots[1].send_signal(signal.SIGKILL)
        bots[1].wait(timeout=30)
        worker = spawn_animabot(configs[0], ["worker"], logs["worker"])
        processes.append(worker)
        await until(lambda: _finished(store, waiting), 240, f"job {waiting} rendered")
        later = await animate(0, "a lantern after the kill")
        await until(lambda: delivered(later), 240, f"job {later} delivered")
        assert (await store.get(waiting)).result_post_id is None, "shard 0's process delivered shard 1's job"

        # 3. shard 1's process is back: the job held in the store is delivered
        bots[1] = spawn_animabot(configs[1], ["run", "--no-engine"], logs["bot1"])
        processes.append(bots[1])
        await until(lambda: delivered(waiting), 240, f"job {waiting} delivered after the restart")
    finally:
        stop(processes)
        if store is not None:
            await store.close()

    text = {name: log.read_text(errors="replace") for name, log in logs.items()}
    for shard, job_id in [(0, first[0]), (1, first[1]), (1, waiting), (0, later)]:
        posts = [m for m in fake.bot_messages(channels[shard]) if m.attachments
                 and m.attachments[0].filename.startswith(f"animabot-{job_id}-")]  # fmt: skip
        assert len(posts) == 1, f"job {job_id} was posted {len(posts)} times"
        assert result_of(fake, channels[shard], job_id).id == posts[0].id
        assert f"job {job_id}: done, delivered" in text[f"bot{shard}"]
        assert f"job {job_id}: done, delivered" not in text[f"bot{1 - shard}"]
    assert fake.errors == []


async def _finished(store: JobStore, job_id: int) -> bool:
    return (await store.get(job_id)).status is JobStatus.DONE


async def _logged(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")

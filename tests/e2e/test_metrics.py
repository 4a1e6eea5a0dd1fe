"""``/metrics`` and ``/healthz`` from real processes (issue 23): ``animabot run --no-engine`` and
``animabot worker`` processes on the loopback Discord render a few jobs; their metrics, scraped over
HTTP, count the frames, show the queue drained and the waits observed. A real Prometheus (Debian's
``prometheus`` package; ``.ci/run`` installs it) scrapes a bot and two workers on PostgreSQL and
answers the same through its query API. A metrics port in use is one line and exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.botharness import command, job_id_in
from support.processes import spawn_animabot, stop
from support.waiting import until

from engine.store.store import JobStore

FRAMES = 3
JOBS = 3
PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: Path, fake, world, *, url: str = "", data: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f'data_dir = "{data or folder / "data"}"\n'
        f'[engine]\nmodel = "test-tiny"\ndevice = "cpu"\ncompile = false\nmax_batch = 2\n'
        f"[render]\nframes = {FRAMES}\nfps = 8\nsteps = 1\nwidth = 64\nheight = 64\n"
        f"[limits]\ndaily_quota = 50\nmax_queued_per_user = 5\ncooldown_seconds = 0\n"
        f'[discord]\ntoken = "{fake.token}"\nguild_ids = [{world.guild_id}]\n'
        f'api_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"\n'
        f'[store]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


async def _get(url: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except OSError:
            return 0, ""

    return await asyncio.to_thread(fetch)


async def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """``/metrics`` of the process on ``port``: ``(sample name, sorted labels)`` → value."""
    status, text = await _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels) -> float:
    """The sum of ``name``'s series whose labels include ``labels``."""
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have))


@contextlib.asynccontextmanager
async def hosts(tmp_path: Path, fake, world, *, workers: int, url: str = ""):
    """A bot (``run --no-engine``) and ``workers`` worker processes, each serving its metrics on a port of
    its own; on SQLite they share one data folder (one host), on PostgreSQL each has its own. Yields the ports,
    ``{"bot": port, "w1": port, ...}``, once every process answers ``/healthz`` and the bot synced its commands."""
    shared = tmp_path / "data" if not url else None
    ports = {name: _free_port() for name in ["bot", *(f"w{n}" for n in range(1, workers + 1))]}
    processes = []
    try:
        for name, port in ports.items():
            config = _config(tmp_path / name, fake, world, url=url, data=shared)
            role = ["run", "--no-engine"] if name == "bot" else ["worker"]
            processes.append(
                spawn_animabot(config, [*role, "--metrics-listen", f"127.0.0.1:{port}"], tmp_path / f"{name}.log")
            )
        for name, port in ports.items():
            await until(lambda port=port: _healthy(port), 120, f"{name} answering /healthz")
        await fake.wait_for(lambda: fake.sync_calls, 60, "the bot process to sync its commands")
        await fake.wait_ready(60)  # its gateway session too (the sharded bot asks /gateway/bot first)
        yield ports
    finally:
        stop(processes)


async def _healthy(port: int) -> bool:
    status, text = await _get(f"http://127.0.0.1:{port}/healthz")
    return status == 200 and text == "ok\n"


async def render_jobs(fake, world, store: JobStore) -> list[int]:
    """Ask for ``JOBS`` clips and wait until every one is delivered."""
    jobs = []
    for n in range(JOBS):
        answer = await command(fake, "animate", {"prompt": f"a kite {n}"}, user_id=world.member_id,
                               channel_id=world.channel_id, timeout=30)  # fmt: skip
        jobs.append(job_id_in(answer.content))

    async def delivered() -> bool:
        states = [await store.get(job_id) for job_id in jobs]
        return all(job.status.finished and job.result_post_id for job in states)

    await until(delivered, 300, "every job delivered")
    return jobs


async def test_a_bot_and_a_worker_serve_what_they_did_on_metrics(fake, world, tmp_path):
    async with hosts(tmp_path, fake, world, workers=1) as ports:
        async with await JobStore.open(tmp_path / "data" / "animabot.sqlite3") as store:
            await render_jobs(fake, world, store)
        worker, bot = await scrape(ports["w1"]), await scrape(ports["bot"])

        assert total(worker, "animabot_frames_rendered_total") == JOBS * FRAMES
        assert total(worker, "animabot_jobs_finished_total", status="done") == JOBS
        assert total(worker, "animabot_render_seconds_per_frame_count") == total(worker, "animabot_render_rounds_total")
        assert total(worker, "animabot_store_query_seconds_count", operation="claim") >= JOBS
        assert total(worker, "animabot_queue_jobs") == 0, "workers do not export the queue"

        assert total(bot, "animabot_queue_jobs", status="queued") == 0
        assert total(bot, "animabot_queue_jobs", status="running") == 0
        assert total(bot, "animabot_queue_oldest_queued_seconds") == 0
        assert total(bot, "animabot_workers_alive") == 1
        assert total(bot, "animabot_job_wait_seconds_count") == JOBS
        assert total(bot, "animabot_job_end_to_end_seconds_count") == JOBS
        assert total(bot, "animabot_uploads_total") == JOBS and total(bot, "animabot_upload_bytes_total") > 0
        assert total(bot, "animabot_interactions_answered_total") >= JOBS
        assert total(bot, "animabot_discord_responses_total", route="interactions", status="2xx") >= JOBS
        assert total(bot, "animabot_event_loop_lag_seconds_count") > 0
        assert total(bot, "animabot_frames_rendered_total") == 0, "the bot renders nothing"


def _start_prometheus(tmp_path: Path, ports: dict[str, int]) -> tuple[subprocess.Popen, int]:
    """Prometheus scraping the bot and the workers every second; its web port."""
    web = _free_port()
    workers = [f"127.0.0.1:{port}" for name, port in ports.items() if name != "bot"]
    scrape_config = tmp_path / "prometheus.yml"
    scrape_config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "animabot-bot", "static_configs": [{"targets": [f"127.0.0.1:{ports['bot']}"]}]},
                    {"job_name": "animabot-worker", "static_configs": [{"targets": workers}]},
                ],
            }
        )
    )
    args = [PROMETHEUS, f"--config.file={scrape_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}"]  # fmt: skip
    log = open(tmp_path / "prometheus.log", "wb")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log), web


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus package is not installed (.ci/run installs it)")
async def test_prometheus_scrapes_a_bot_and_two_workers_on_postgresql(fake, world, pg_cluster, tmp_path):
    url = pg_cluster.new_database()
    async with hosts(tmp_path, fake, world, workers=2, url=url) as ports:
        prometheus, web = _start_prometheus(tmp_path, ports)
        try:
            async with await JobStore.open(url, data_dir=tmp_path / "test-data") as store:
                await render_jobs(fake, world, store)

            async def value(query: str, expected: float) -> bool:
                status, text = await _get(
                    f"http://127.0.0.1:{web}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
                )
                result = json.loads(text)["data"]["result"] if status == 200 else []
                return bool(result) and float(result[0]["value"][1]) == expected

            checks = {
                'count(up{job="animabot-worker"} == 1)': 2,  # each worker up
                'up{job="animabot-bot"}': 1,
                "sum(animabot_frames_rendered_total)": JOBS * FRAMES,  # frames counted
                'sum(animabot_queue_jobs{status=~"queued|running"})': 0,  # queue drained
                "sum(animabot_job_wait_seconds_count)": JOBS,  # waits observed
                "animabot_workers_alive": 2,
            }
            for query, expected in checks.items():
                await until(lambda q=query, e=expected: value(q, e), 60, f"Prometheus answering {query} = {expected}")
        finally:
            stop([prometheus])


def test_a_metrics_port_in_use_is_one_line_and_exit_2(fake, world, tmp_path):
    config = _config(tmp_path / "w", fake, world)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "ANIMABOT_METRICS_LISTEN": f"127.0.0.1:{port}"}
        done = subprocess.run([sys.executable, "-m", "bot.cli.main", "--config", str(config), "worker"],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"animabot: the metrics port 127.0.0.1:{port} is in use; stop what holds it or pick another with --metrics-listen."
    ]

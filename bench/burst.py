"""Burst benchmark (issue 9, item 5): 50 members send /animate within one second.

    python bench/burst.py --out bench/results/burst-cpu.json

The real bot (``bot.cli.run.start_bot``, the path of ``animabot run``, test-tiny on the CPU)
against the loopback Discord of the tests. Each of ``--members`` members sends ``/animate``
twice (tiny frames), all 2×N commands spread over one second, and one more member asks
``/queue`` in the middle of it. Recorded:

- how long each interaction took to be acknowledged (the defer; Discord's limit for the first
  response is 3 s) and answered (request to the filled-in "Queued" reply), p50/p95/p99, and ``/queue``'s;
- fair order: every member's first job started before any member's second;
- the event loop's lag (a 5 ms probe) from the first command until every job is done: p50/p99/max;
- RSS before the burst and after the queue drained.

Timings are recorded, never asserted (the tests do not either).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from machine import machine, percentile, rss_mib, write_report  # noqa: E402
from support.botharness import job_id_in, make_config, start  # noqa: E402
from support.fakediscord import fake_discord  # noqa: E402

from engine.config import LimitsConfig  # noqa: E402
from engine.request.params import RenderParams  # noqa: E402

TINY = RenderParams(prompt="-", negative_prompt="", frames=1, fps=8, steps=1, width=64, height=64)
LIMITS = LimitsConfig(max_frames=4, max_steps=4, max_side=768, max_fps=24, daily_quota=50, max_queued_per_user=5,
                      cooldown_seconds=0)  # fmt: skip


class LagProbe:
    """Sleeps ``interval`` in a loop and records how late it wakes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_ms.append((time.perf_counter() - before - self.interval) * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict:
        self._task.cancel()
        lags = sorted(self.lags_ms)
        return {
            "samples": len(lags),
            "p50_ms": round(percentile(lags, 0.50), 2),
            "p99_ms": round(percentile(lags, 0.99), 2),
            "max_ms": round(lags[-1], 2) if lags else 0.0,
        }


async def answered(fake, name: str, options: dict | None, *, user_id: int, channel_id: int) -> tuple[float, float, str]:
    """Run a command: (seconds until it was acknowledged, until its reply was filled in, the reply's text).

    Discord's 3 s are for the acknowledgement (the defer); the fake refuses one later than that.
    """
    sent = time.perf_counter()
    interaction = await fake.slash(name, options, user_id=user_id, channel_id=channel_id)
    await interaction.wait_response(60)
    acked = time.perf_counter() - sent
    [reply] = await interaction.wait_followups(1, 60)
    return acked, time.perf_counter() - sent, reply.content


async def run(data: Path, members: int) -> dict:
    async with fake_discord() as fake:
        world = fake.default_world()
        users = [fake.add_member(world.guild_id, name=f"member{i}") for i in range(members)]
        config = dataclasses.replace(make_config(data, fake, world), render=TINY, limits=LIMITS)
        running = await start(config)
        try:
            rss_before = rss_mib()
            probe = LagProbe()
            probe.start()
            spacing = 1.0 / (2 * members)

            async def send(index: int, user_id: int, turn: int) -> tuple[float, float, str]:
                # every command at its own slot of the one second, whether or not earlier ones are answered
                await asyncio.sleep(max(0.0, (turn * members + index) * spacing - (time.perf_counter() - t0)))
                return await answered(fake, "animate", {"prompt": f"a cat {index}.{turn}"}, user_id=user_id,
                                      channel_id=world.channel_id)  # fmt: skip

            async def member(index: int, user_id: int) -> list[tuple[float, float, str]]:
                return list(await asyncio.gather(send(index, user_id, 0), send(index, user_id, 1)))

            async def queue_midway() -> tuple[float, float, str]:
                await asyncio.sleep(0.5)
                return await answered(fake, "queue", None, user_id=world.member_id, channel_id=world.channel_id)

            t0 = time.perf_counter()
            burst = asyncio.gather(*(member(i, u) for i, u in enumerate(users)))
            _, queue_seconds, queue_text = await queue_midway()
            per_member = await burst
            burst_seconds = time.perf_counter() - t0
            jobs = {(i, turn): job_id_in(row[2]) for i, rows in enumerate(per_member) for turn, row in enumerate(rows)}
            store = running.bot.store
            while True:
                stored = {key: await store.get(job_id) for key, job_id in jobs.items()}
                if all(job.status.finished for job in stored.values()):
                    break
                await asyncio.sleep(0.2)
            drained_seconds = time.perf_counter() - t0
            lag = await probe.stop()
            rss_after = rss_mib()
        finally:
            await running.stop()
    acks = sorted(row[0] for rows in per_member for row in rows)
    answers = sorted(row[1] for rows in per_member for row in rows)
    firsts = [stored[(i, 0)].started_at for i in range(members)]
    seconds_ = [stored[(i, 1)].started_at for i in range(members)]
    return {
        "members": members,
        "interactions": len(answers) + 1,
        "params": {"frames": TINY.frames, "steps": TINY.steps, "size": TINY.size},
        "burst_seconds": round(burst_seconds, 2),
        "ack_seconds": {
            "p50": round(percentile(acks, 0.5), 3),
            "p95": round(percentile(acks, 0.95), 3),
            "p99": round(percentile(acks, 0.99), 3),
            "max": round(acks[-1], 3),
            "over_3_s": sum(1 for a in acks if a > 3.0),
        },
        "answer_seconds": {
            "p50": round(percentile(answers, 0.5), 3),
            "p95": round(percentile(answers, 0.95), 3),
            "p99": round(percentile(answers, 0.99), 3),
            "max": round(answers[-1], 3),
            "over_3_s": sum(1 for a in answers if a > 3.0),
        },
        "queue_answer_seconds": round(queue_seconds, 3),
        "queue_answer_lines": queue_text.count("\n") + 1,
        "fair_order": max(firsts) <= min(seconds_),
        "statuses": sorted({job.status.value for job in stored.values()}),
        "drained_seconds": round(drained_seconds, 1),
        "loop_lag": lag,
        "rss_mib": {"before": rss_before, "after": rss_after},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        report["burst"] = await run(Path(tmp) / "data", args.members)
    write_report(report, args.out)


if __name__ == "__main__":
    asyncio.run(main())

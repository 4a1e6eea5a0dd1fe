"""``/status``'s text: the queue, the median wait, the workers alive and their speed, and (for
members with Manage Server) what this server rendered today. Workers are numbered, not named: their
names are host names, which members have no use for."""

from __future__ import annotations

from bot.text.messages import format_duration
from engine.store.stats import GuildDay, QueueCounts, WorkerSpeed


def status_text(
    counts: QueueCounts,
    median_wait: float | None,
    workers: list[WorkerSpeed],
    lease_seconds: float,
    today: GuildDay | None = None,
) -> str:
    waiting = sum(n for (status, _), n in counts.jobs.items() if status == "queued")
    running = sum(n for (status, _), n in counts.jobs.items() if status == "running")
    queue = f"**Queue:** {waiting} waiting, {running} rendering"
    if waiting:
        queue += f" (the oldest has waited {format_duration(counts.oldest_queued_seconds)})"
    wait = (
        f"**Median wait** over the last hour: {format_duration(median_wait)}"
        if median_wait is not None
        else "**Median wait:** no job started in the last hour"
    )
    alive = [worker for worker in workers if worker.heartbeat_age < lease_seconds]
    lines = [queue, wait, f"**Workers alive:** {len(alive)}"]
    for number, worker in enumerate(alive, 1):
        speed = (
            f"{worker.seconds_per_frame:.2f} s/frame"
            if worker.seconds_per_frame is not None
            else "no render finished in the last hour"
        )
        lines.append(f"• worker {number}: {speed}")
    if today is not None:
        lines.append(
            f"**This server today:** {today.renders} render{'s' * (today.renders != 1)}, "
            f"{today.frames} frames, {today.members} member{'s' * (today.members != 1)}"
        )
    return "\n".join(lines)

"""What a job is: its kind, its status and the frozen record read from the store; what a user has used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from engine.request.params import RenderParams


class JobKind(str, Enum):
    ANIMATE = "animate"
    REROLL = "reroll"
    MUX = "mux"

    @property
    def renders(self) -> bool:
        """Renders need the GPU; mux is CPU work and never waits behind them."""
        return self is not JobKind.MUX

    @property
    def lane(self) -> str:
        """The fair order's lane (``claim_turns.lane``): ``"render"`` or ``"mux"``."""
        return "render" if self.renders else "mux"


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    status: JobStatus
    params: RenderParams | None  # None for mux jobs
    seed: int | None
    guild_id: int | None
    origin_id: int | None  # where the request came from (the front end's place to answer in)
    user_id: int
    parent_id: int | None  # re-roll: the job it re-rolls; mux: the job whose video gets the audio
    audio_path: str | None  # mux: the downloaded audio file
    frames_done: int
    frames_total: int
    preview_path: str | None
    result_path: str | None
    error: str | None
    eta_seconds: float | None
    cancel_requested: bool
    progress_post_id: int | None  # the front end's post showing progress
    result_post_id: int | None  # the front end's post carrying the outcome; set once it is delivered
    worker: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    lease_token: int = 0  # the fencing token of the latest claim: a worker's writes carry it
    lease_expires_at: float | None = None  # the claim is the worker's until then (renewed by heartbeats)
    claimed_frames: int = 0  # frames_done when it was last claimed (did the attempt advance?)
    stalled_attempts: int = 0  # attempts that ended without a new saved frame
    safety: str = "off"  # the content policy it was requested under: off, block or spoiler (engine.config.SafetyMode)

    @classmethod
    def from_row(cls, row) -> Job:
        """Build from an ``aiosqlite.Row`` (or any mapping) of the ``jobs`` table."""
        data = dict(row)
        params = data.pop("params")
        return cls(
            **{
                **data,
                "kind": JobKind(data["kind"]),
                "status": JobStatus(data["status"]),
                "params": RenderParams.from_dict(json.loads(params)) if params else None,
                "cancel_requested": bool(data["cancel_requested"]),
            }
        )


DAY = 86400.0  # a UTC day in unix seconds (unix time has no leap seconds)


@dataclass(frozen=True)
class Usage:
    """What one user has used in one guild, as counted by the store (jobs of every kind: a mux job
    counts against the quota, the queue and the cooldown like a render)."""

    renders_today: int = 0  # jobs enqueued since 00:00 UTC
    queued: int = 0  # jobs queued or running now
    last_request_at: float | None = None  # when the latest job was enqueued

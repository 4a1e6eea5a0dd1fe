"""For the job store tests (``tests/store``): a fixed clock, small render parameters, and a render
enqueued for a user."""

from __future__ import annotations

from engine.request.params import RenderParams
from engine.store.jobs import Job, JobKind
from engine.store.store import JobStore

T0 = 1_700_000_000.0


def params(frames: int = 8, seed: int = 1, width: int = 512, height: int = 512) -> RenderParams:
    return RenderParams(prompt="a cat", frames=frames, seed=seed, width=width, height=height)


async def render(store: JobStore, user: int, now: float = T0, guild: int | None = 1, **kw) -> Job:
    return await store.enqueue(JobKind.ANIMATE, params(**kw), user_id=user, guild_id=guild, origin_id=5, now=now)

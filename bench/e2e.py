"""End-to-end benchmark (issue 14, rows E1 and E2): ``/animate`` until its MP4 is posted, through ``animabot run``.

    python bench/e2e.py --out bench/results/e2e-h100.json          # on a CUDA GPU (bench/device.sh runs it)
    python bench/e2e.py --shape tiny --device cpu --size 64 --frames 2 --steps 2 --out /tmp/e2e-smoke.json

The real bot (``bot.cli.run.start_bot``, the code path of ``animabot run``, its engine runtime in the
same process) against the loopback Discord of the tests. ``--shape sd15`` (the default) renders with
SD1.5-shaped random weights (``engine.render.weights.tiny``: the real layer sizes, so the real FLOPs), saved
once as diffusers folders in ``--weights-dir`` and loaded by the same ``from_pretrained`` calls as
real weights; ``--shape tiny`` uses ``test-tiny``. The clips are ``config.example.toml``'s
``[render]`` defaults (16 frames, 12 steps, 512x512, strength 0.6), which ``--frames``, ``--steps``
and ``--size`` change for a smoke run.

1. Start the bot; wait until the runtime has loaded the model and compiled its step for one job and
   for a full batch (on CUDA), then render one untimed clip (first-call costs: ffmpeg, cuDNN autotuning).
2. E1: one member asks for one default clip on the idle GPU, three times in a row. Target <= 3 s.
3. E2: 8 members ask for a default clip each at once. Target: p95 of their waits <= 10 s.
   (p50 and p95 are ``machine.percentile``'s ranks: of 8 waits, p95 is the largest and p50 the 5th.)

A wait is from the moment the member's command is sent to the posting of the message carrying
their MP4. Each job also gets a breakdown that adds up to its wait: request to queued (the store
row's ``created_at``), queued to started (the claim), started to finished (render and encode) and
finished to posted; beside it the seconds until the command was acknowledged (defer) and until the
"queued" reply was shown. Message times are the loopback Discord's records of each revision
(``time.monotonic``); the store's are unix times, put on the same clock with one offset taken at start.

The compiled step comes from inductor's cache (``TORCHINDUCTOR_CACHE_DIR``, exported before Python
starts; ``bench/device.sh`` exports gpu_chain's ``/tmp/animabot-inductor``, so after gpu_chain the
compile is a cache load). The report's ``setup.inductor_cache`` is the folder that was used.

Timings are recorded, never asserted (``tests/e2e/test_bench_e2e.py`` checks only the behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
from machine import machine, percentile, write_report  # noqa: E402
from support.botharness import job_id_in, make_config, start  # noqa: E402
from support.fakediscord import FakeDiscord, MessageRecord, World, fake_discord  # noqa: E402
from support.fakediscord.openapi import VIOLATIONS  # noqa: E402
from support.waiting import result_of, until  # noqa: E402

from engine.config import Config, load_config  # noqa: E402
from engine.render.weights import tiny  # noqa: E402
from engine.store.jobs import JobStatus  # noqa: E402
from engine.store.store import JobStore  # noqa: E402

E1_TARGET_S = 3.0
E1_REPETITIONS = 3
E2_TARGET_P95_S = 10.0
E2_MEMBERS = 8
MAX_BATCH = 8
POLL_INTERVAL = 1.0  # animabot run's (the harness shortens it); the in-process runtime wakes the watcher sooner
RESULT_TIMEOUT = 600.0  # per clip: an upper bound for a cold GPU, never what a run waits
WARM_UP_TIMEOUT = 900.0  # compiling a full batch without the inductor cache takes minutes
WEIGHTS_MARKER = "animabot-bench-weights.json"  # written last: the folder is complete


# -- weights and config ---------------------------------------------------------------------------
def sd15_weights(folder: Path, seed: int = 0) -> Path:
    """SD1.5-shaped random weights as diffusers folders (``folder/sd``, ``folder/controlnet``) in fp16,
    saved once: a folder this function completed is reused. Saved beside it and renamed into place,
    so an interrupted save is never taken for a complete one."""
    wanted = {"shape": "sd15", "seed": seed, "dtype": "float16"}
    marker = folder / WEIGHTS_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} holds something other than this benchmark's weights; pass another --weights-dir")
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        started = time.perf_counter()
        tiny.save_test_tiny(building, seed, shape="sd15", dtype=torch.float16)
        (building / WEIGHTS_MARKER).write_text(json.dumps(wanted))
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.rename(building, folder)
        print(f"saved SD1.5-shaped weights in {folder} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def model_ids(args: argparse.Namespace) -> tuple[str, str]:
    """``[engine] model`` and ``controlnet`` for ``--shape``: test-tiny, or the saved SD1.5-shaped folders."""
    if args.shape == "tiny":
        return "test-tiny", "test-tiny"
    folder = sd15_weights(args.weights_dir)
    return str(folder / "sd"), str(folder / "controlnet")


def bench_config(
    data: Path, fake: FakeDiscord, world: World, args: argparse.Namespace, models: tuple[str, str]
) -> Config:
    """The loopback bot's config: ``config.example.toml``'s [render] and [engine], with the models, the
    device and the limits this benchmark needs (only canny is offered: no depth or pose models)."""
    example = load_config(ROOT / "config.example.toml")
    model, controlnet = models
    engine = dataclasses.replace(
        example.engine, model=model, controlnet=controlnet, device=args.device, compile=compiles(args),
        max_batch=MAX_BATCH, depth_controlnet="", depth_annotator="", pose_controlnet="", pose_annotator="",
    )  # fmt: skip
    render = example.render
    render = dataclasses.replace(
        render,
        frames=args.frames or render.frames,
        steps=args.steps or render.steps,
        width=args.size or render.width,
        height=args.size or render.height,
    )
    limits = example.limits
    limits = dataclasses.replace(
        limits, max_frames=max(limits.max_frames, render.frames), max_steps=max(limits.max_steps, render.steps),
        max_side=max(limits.max_side, render.width), daily_quota=1000, max_queued_per_user=E1_REPETITIONS,
        cooldown_seconds=0,
    )  # fmt: skip
    return make_config(data, fake, world, engine=engine, render=render, limits=limits)


def compiles(args: argparse.Namespace) -> bool:
    return args.device.startswith("cuda") and not args.no_compile


# -- one member's request ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One ``/animate`` as the loopback Discord saw it: when each thing happened (``time.monotonic``)."""

    job_id: int
    sent: float  # just before the command was sent
    acknowledged_at: float  # the bot's first callback (the defer)
    queued_reply_at: float  # the "Queued job N" reply was shown
    posted_at: float  # the message carrying the MP4 was posted


def shown_at(message: MessageRecord, shows) -> float:
    """When ``message`` first showed what ``shows(revision)`` looks for. Not always its creation: the
    reply to a deferred command is the defer's "thinking" message, filled in by the first followup."""
    return next(revision.at for revision in message.revisions if shows(revision))


async def animate(fake: FakeDiscord, store: JobStore, world: World, user_id: int, prompt: str) -> Request:
    """Send ``/animate prompt`` as ``user_id`` and wait for its MP4 in the channel."""
    sent = time.monotonic()
    interaction = await fake.slash("animate", {"prompt": prompt}, user_id=user_id, channel_id=world.channel_id)
    response = await interaction.wait_response(30)
    [reply] = await interaction.wait_followups(1, 30)
    job_id = job_id_in(reply.content)
    result = await posted(fake, store, world.channel_id, job_id)
    video = f"animabot-{job_id}-"
    return Request(
        job_id=job_id,
        sent=sent,
        acknowledged_at=response.at,
        queued_reply_at=shown_at(reply, lambda revision: revision.content),
        posted_at=shown_at(result, lambda revision: any(a.filename.startswith(video) for a in revision.attachments)),
    )


async def posted(fake: FakeDiscord, store: JobStore, channel_id: int, job_id: int) -> MessageRecord:
    """The message with job ``job_id``'s video, once posted; a job that ended otherwise raises at once.

    The wait wakes on the fake's changes; the store is read once a second (not at every change,
    which would load the event loop the bot runs on)."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        try:
            return await fake.wait_for(lambda: result_of(fake, channel_id, job_id), 1.0, f"the video of job {job_id}")
        except TimeoutError:
            job = await store.get(job_id)
            if job is not None and job.status.finished and job.status is not JobStatus.DONE:
                raise RuntimeError(f"job {job_id} ended {job.status.value}: {job.error}") from None
            if time.monotonic() > deadline:
                raise


async def breakdown(store: JobStore, request: Request, wall_offset: float) -> dict:
    """Where one request's wait went; the four ``*_to_*`` parts add up to ``wait_s``."""
    job = await store.get(request.job_id)

    def since(earlier: float, later: float) -> float:
        return round(later - earlier, 3)

    created, started, finished = (t - wall_offset for t in (job.created_at, job.started_at, job.finished_at))
    return {
        "job_id": job.id,
        "status": job.status.value,
        "frames": job.params.frames,
        "steps": job.params.steps,
        "size": job.params.size,
        "wait_s": since(request.sent, request.posted_at),
        "acknowledged_s": since(request.sent, request.acknowledged_at),
        "queued_reply_s": since(request.sent, request.queued_reply_at),
        "request_to_queued_s": since(request.sent, created),
        "queued_to_started_s": since(created, started),
        "started_to_finished_s": since(started, finished),
        "finished_to_posted_s": since(finished, request.posted_at),
    }


# -- the run ------------------------------------------------------------------------------------------
class StartLog(logging.Handler):
    """Keeps the runtime's own lines about loading the model and compiling its step (and their seconds)."""

    LOGGERS = ("engine.render.weights.models", "engine.runtime.gpu_models")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("loaded ", "compiled ")):
            self.lines.append(message)

    def attach(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO)
            logger.addHandler(self)


async def run(data: Path, args: argparse.Namespace, models: tuple[str, str]) -> dict:
    start_log = StartLog()
    start_log.attach()
    wall_offset = time.time() - time.monotonic()
    async with fake_discord() as fake:
        world = fake.default_world()
        config = bench_config(data, fake, world, args, models)
        e1_member = fake.add_member(world.guild_id, name="e1")
        e2_members = [fake.add_member(world.guild_id, name=f"e2-{i}") for i in range(E2_MEMBERS)]

        # 1. start, and wait until the GPU is warm and idle
        started = time.monotonic()
        running = await start(config, poll_interval=POLL_INTERVAL)
        start_s = time.monotonic() - started
        try:
            store, batcher = running.bot.store, running.bot.runtime.batcher
            components = running.bot.runtime.components
            engine = {
                "device": str(components.device),
                "dtype": str(components.dtype).removeprefix("torch."),
                "compiled_step": batcher.gpu_models.predict is not None,
            }

            async def compiled() -> bool:
                # every batch size up to a full batch: warm_next keeps a size pending until it is compiled
                return not batcher.gpu_models.wants_warm_up

            await until(compiled, WARM_UP_TIMEOUT, "every batch size compiled")
            warm = await animate(fake, store, world, world.member_id, "a lighthouse in a storm, warm-up")
            warm_job = await breakdown(store, warm, wall_offset)
            warm_claimed = (await store.get(warm.job_id)).started_at - wall_offset
            warm_up = {
                "start_bot_s": round(start_s, 2),  # model load, one job's compiled step, gateway
                "then_until_warm_s": round(warm_claimed - (started + start_s), 2),  # the other batch sizes' compiles
                "runtime_log": start_log.lines,
                "warm_up_clip": warm_job,
            }

            # 2. E1: one member, one default clip on the idle GPU, three times
            e1 = []
            for turn in range(E1_REPETITIONS):
                request = await animate(fake, store, world, e1_member, f"a cat in a sunflower field {turn}")
                e1.append(await breakdown(store, request, wall_offset))

            # 3. E2: eight members at once
            e2_requests = await asyncio.gather(
                *(animate(fake, store, world, user, f"a koi pond, member {i}") for i, user in enumerate(e2_members))
            )
            e2 = [await breakdown(store, request, wall_offset) for request in e2_requests]
        finally:
            await running.stop()
        errors = list(fake.errors)

    e1_waits = [job["wait_s"] for job in e1]
    e2_waits = sorted(job["wait_s"] for job in e2)
    e1_median = statistics.median(e1_waits)
    e2_p95 = percentile(e2_waits, 0.95)
    render = config.render
    return {
        "setup": {
            "shape": args.shape,
            "size": render.size,
            "frames": render.frames,
            "steps": render.steps,
            "strength": render.strength,
            "scheduler": render.scheduler,
            **engine,
            "max_batch": MAX_BATCH,
            "model": config.engine.model,
            "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
            "warm_up": warm_up,
        },
        "rows": {
            "E1_one_member_default_clip": {
                "what": "one member's /animate of a default clip on an idle GPU, request to MP4 posted",
                "repetitions": E1_REPETITIONS,
                "waits_s": e1_waits,
                "median_s": e1_median,
                "target_s": E1_TARGET_S,
                "meets_target": e1_median <= E1_TARGET_S,
                "jobs": e1,
            },
            "E2_8_members_at_once": {
                "what": f"{E2_MEMBERS} members each ask for a default clip at once; each wait is their request to their MP4 posted",
                "members": E2_MEMBERS,
                "waits_s": e2_waits,
                "p50_s": percentile(e2_waits, 0.5),
                "p95_s": e2_p95,
                "max_s": e2_waits[-1],
                "target_p95_s": E2_TARGET_P95_S,
                "meets_target": e2_p95 <= E2_TARGET_P95_S,
                "jobs": e2,
            },
        },
        "loopback_discord": {"errors": errors, "openapi_violations": sorted(set(VIOLATIONS))},
    }


def describe_machine(device: str) -> dict:
    found = machine()
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        found["gpu"] = torch.cuda.get_device_name(index)
        found["gpu_memory_gib"] = round(torch.cuda.get_device_properties(index).total_memory / 2**30, 1)
        found["cuda"] = torch.version.cuda
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", choices=tiny.SHAPES, default="sd15", help="sd15: SD1.5-shaped weights; tiny: test-tiny"
    )
    parser.add_argument("--weights-dir", type=Path, default=Path("/tmp/animabot-sd15-weights"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-compile", action="store_true", help="run the UNet+ControlNet step eagerly on CUDA")
    parser.add_argument("--size", type=int, help="square side in pixels (default: config.example.toml's)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: config.example.toml's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: config.example.toml's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"machine": describe_machine(args.device)}
    models = model_ids(args)  # before the loopback Discord starts: saving SD1.5-sized weights takes a while
    with tempfile.TemporaryDirectory(prefix="animabot-e2e-") as tmp:
        report.update(await run(Path(tmp) / "data", args, models))
    write_report(report, args.out)


if __name__ == "__main__":
    asyncio.run(main())

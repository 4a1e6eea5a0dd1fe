"""Coherence benchmark (issue 24): the same clip with ``coherence`` off, cross-frame and motion.

    python bench/coherence.py --out bench/results/coherence-cpu.json        # test-tiny on the CPU
    python bench/coherence.py --shape sd15 --device cuda --size 512 --jobs 1 8 --out bench/results/coherence-gpu.json

For each mode and job count, in a fresh process (so one mode's peak memory is not the other's):
seconds per frame (the fastest of ``--repeat`` runs; the rounds only: every job's frames, batched as the runtime batches them), the
peak of the cross-frame states (``engine.render.coherence.FrameStates.nbytes``) beside the estimate
the runtime admits jobs by (``state_bytes``), the process's peak memory (CPU: ``VmHWM``; CUDA:
``torch.cuda.max_memory_allocated``), and the flicker meter of ``animabot metrics`` on job 0's clip.
Motion renders each job's windows (``engine.render.motion``) one job after another, as the runtime
does, with the test-tiny motion adapter (``--shape sd15``: ``MotionAdapter()``'s own SD1.5 sizes,
random weights).

``--shape sd15`` builds SD1.5-shaped random weights (``bench/gpu_chain.py``); ``test-tiny`` is the
built-in tiny model. With random weights these numbers test the mechanics and the cost only: how
steady a clip looks needs real weights (the README's "Coherence" section gives that command).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine, write_report

MODES = ("off", "cross-frame", "motion")
PROMPT = "a lighthouse on a cliff at sunset, waves below"


def status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args: argparse.Namespace) -> dict:
    """One mode and job count, in this process: the rounds timed, the memory and the clip measured."""
    import torch

    from engine.config import EngineConfig
    from engine.render.chain import FrameChain, render_round
    from engine.render.coherence import state_bytes
    from engine.request.params import RenderParams
    from engine.video.finish import finish_clip
    from engine.video.metrics import measure_video

    device = torch.device(args.device)
    if args.shape == "test-tiny":
        from engine.render.weights.models import load_components

        components = load_components(EngineConfig(model="test-tiny", device=args.device))
    else:
        from gpu_chain import build

        components = build(args.shape, device, torch.float16 if device.type == "cuda" else torch.float32)
    params = RenderParams(prompt=PROMPT, frames=args.frames, fps=8, seed=args.seed, steps=args.steps,
                          width=args.size, height=args.size, coherence=args.child)  # fmt: skip
    if args.child == "motion":
        return motion_child(args, components, params)
    chains = [FrameChain(components, params.with_seed(args.seed + n)) for n in range(args.jobs[0])]
    states_peak = [0]

    def on_step(step: int, total: int) -> None:
        held = sum(chain.coherence.nbytes for chain in chains if chain.coherence is not None)
        states_peak[0] = max(states_peak[0], held)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = status_mib("VmRSS")
    started = time.perf_counter()
    while not all(chain.done for chain in chains):
        render_round(components, [chain for chain in chains if not chain.done], on_step)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    frames = sum(len(chain.frames) for chain in chains)
    with tempfile.TemporaryDirectory() as folder:
        clip = finish_clip(chains[0].frames, Path(folder) / "job0.mp4", params.fps)
        metrics = measure_video(clip)  # what `animabot metrics` prints
    estimate = state_bytes(components.unet, ("up",), width=params.width, height=params.height, steps=params.steps,
                           strength=params.strength, guided=params.guidance > 1, frames=params.frames)  # fmt: skip
    memory = (
        {"peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
        if device.type == "cuda"
        else {"peak_rss_mib": status_mib("VmHWM"), "rss_before_rounds_mib": rss_before}
    )
    return {
        "seconds_per_frame": round(seconds / frames, 3),
        "frames": frames,
        "states_peak_mib": round(states_peak[0] / 2**20, 3),
        "states_estimate_mib_per_job": round(estimate / 2**20, 3) if args.child == "cross-frame" else 0.0,
        **memory,
        "flicker_job0": metrics,
    }


def motion_child(args: argparse.Namespace, components, params) -> dict:
    """The motion mode: each job's windows through the motion UNet, the jobs one after another."""
    import torch

    from engine.render import motion
    from engine.video.finish import finish_clip
    from engine.video.metrics import measure_video

    device = components.device
    if args.shape == "sd15":
        from diffusers import MotionAdapter

        adapter = MotionAdapter().to(device, components.dtype).eval()  # SD1.5's sizes, random weights
    elif args.shape == "tiny":
        from engine.render.weights.tiny_motion import build_adapter

        adapter = build_adapter().to(device, components.dtype)
    else:
        adapter = motion.load_adapter("test-tiny", components.dtype, device)
    unet = motion.motion_unet(components.unet, adapter)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = status_mib("VmRSS")
    started = time.perf_counter()
    clips = [list(motion.render_motion(components, unet, params.with_seed(args.seed + n))) for n in range(args.jobs[0])]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    frames = sum(len(clip) for clip in clips)
    with tempfile.TemporaryDirectory() as folder:
        metrics = measure_video(finish_clip(clips[0], Path(folder) / "job0.mp4", params.fps))
    memory = (
        {"peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
        if device.type == "cuda"
        else {"peak_rss_mib": status_mib("VmHWM"), "rss_before_rounds_mib": rss_before}
    )
    return {"seconds_per_frame": round(seconds / frames, 3), "frames": frames, "states_peak_mib": 0.0,
            "states_estimate_mib_per_job": 0.0, **memory, "flicker_job0": metrics}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="test-tiny", choices=("test-tiny", "tiny", "sd15"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1], help="job counts to run (each batched)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, modes alternating; the fastest is kept")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    results: dict[str, dict] = {}
    for jobs in args.jobs:
        for _ in range(args.repeat):  # alternating, so a busy spell on a shared machine hits both modes
            for mode in MODES:
                command = [sys.executable, __file__, "--child", mode, "--jobs", str(jobs)]
                for flag in ("shape", "device", "size", "frames", "steps", "seed"):
                    command += [f"--{flag}", str(getattr(args, flag))]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                run = json.loads(done.stdout.strip().splitlines()[-1])
                kept = results.setdefault(f"{mode} x{jobs}", run)
                kept.setdefault("runs_seconds_per_frame", []).append(run["seconds_per_frame"])
                if run["seconds_per_frame"] < kept["seconds_per_frame"]:
                    results[f"{mode} x{jobs}"] = {**run, "runs_seconds_per_frame": kept["runs_seconds_per_frame"]}
    report = {
        "benchmark": "coherence",
        "model": args.shape,
        "note": "random weights: the mechanics and the cost only, not how steady a clip looks",
        "setup": {**{k: v for k, v in vars(args).items() if k not in ("out", "child")}, "prompt": PROMPT},
        "machine": machine(),
        "results": results,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()

"""Flicker benchmark (issue 12): the tutorial's chain against the engine's defaults, one prompt and seed.

    python bench/flicker.py --out bench/results/flicker-cpu.json              # test-tiny on the CPU
    python bench/flicker.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --device cuda --size 512

1. ``tutorial``: what the tutorial's loop does: every frame from the previous frame's Canny map
   alone (no img2img: strength 0), a new seed per frame (seed + k), no colour coherence.
2. ``engine``: the engine's defaults (one seed for every frame's noise, img2img from the previous
   frame, colours held to frame 0's).

Both clips are measured with ``engine.video.metrics.temporal_metrics`` (the JSON of ``animabot
metrics``). On test-tiny the weights are random: the numbers show the mechanics work end to end and
say nothing about how the clips look; with real weights the same command gives the real comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import write_report

from engine.config import EngineConfig
from engine.render.chain import FrameChain, render_frames, render_round
from engine.request.params import RenderParams
from engine.video.metrics import temporal_metrics


def tutorial_frames(components, params: RenderParams) -> list:
    """Frame k from frame k−1's control map only, with its own seed: the tutorial's chain."""
    params = dataclasses.replace(params, strength=0.0, color_coherence=False)
    frames: list = []
    for k in range(params.frames):
        chain = FrameChain(components, dataclasses.replace(params, seed=params.seed + k), frames=frames)
        (frame,) = render_round(components, [chain])
        frames.append(frame)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test-tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--prompt", default="a lighthouse on a cliff at sunset, waves below")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from engine.render.weights.models import load_components

    components = load_components(EngineConfig(model=args.model, device=args.device))
    params = RenderParams(prompt=args.prompt, frames=args.frames, fps=8, seed=args.seed, steps=args.steps,
                          width=args.size, height=args.size)  # fmt: skip
    results = {}
    for name, render in (("tutorial", tutorial_frames), ("engine", lambda c, p: list(render_frames(c, p)))):
        started = time.perf_counter()
        frames = render(components, params)
        results[name] = {**temporal_metrics(frames, params.fps), "seconds": round(time.perf_counter() - started, 2)}
    report = {
        "benchmark": "flicker",
        "model": args.model,
        "note": "random test-tiny weights: mechanics only" if args.model == "test-tiny" else "",
        "params": {**params.to_dict(), "tutorial": "strength 0, seed + k per frame, no colour coherence"},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "device": str(components.device),
        },  # fmt: skip
        "results": results,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()

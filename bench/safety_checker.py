"""The safety checker's cost (issue 22): seconds per checked frame, at batch 8.

    python bench/safety_checker.py --out bench/results/safety-checker-cpu.json

The real checker's layout (``CompVis/stable-diffusion-safety-checker``: CLIP ViT-L/14 at 224×224 and
its 17+3 concepts) with random weights, built in code as ``StableDiffusionSafetyChecker`` from the
real ``CLIPConfig`` sizes (the weights do not change the time; nothing is downloaded), and the
``test-tiny`` checker for scale. Each scores batches of 8 frames of 512×512 through
``engine.render.safety_checker`` (the processor's resize and crop included); median of a few runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from machine import machine, write_report
from transformers import CLIPConfig, CLIPImageProcessor

from engine.render.safety_checker import SafetyChecker

# CompVis/stable-diffusion-safety-checker's config.json: CLIP ViT-L/14's vision tower, 768-d projection.
VIT_L = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
         "image_size": 224, "patch_size": 14}  # fmt: skip


def real_layout(device: str) -> SafetyChecker:
    checker = SafetyChecker.__new__(SafetyChecker)
    checker.device, checker.dtype = torch.device(device), torch.float16 if device.startswith("cuda") else torch.float32
    config = CLIPConfig(vision_config=VIT_L, projection_dim=768)
    checker.model = StableDiffusionSafetyChecker(config).to(checker.device, checker.dtype).eval()
    checker.processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    return checker


def per_frame(checker: SafetyChecker, batch: int, runs: int) -> float:
    frames = list(np.random.default_rng(0).integers(0, 256, (batch, 512, 512, 3), dtype=np.uint8))
    checker.scores(frames)  # warm up
    seconds = []
    for _ in range(runs):
        if checker.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        checker.scores(frames)
        if checker.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return round(statistics.median(seconds) / batch, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {
        "machine": machine(),
        "device": args.device,
        "batch": args.batch,
        "seconds_per_checked_frame": {
            "stable-diffusion-safety-checker layout (ViT-L/14, random weights)": per_frame(
                real_layout(args.device), args.batch, args.runs
            ),
            "test-tiny": per_frame(SafetyChecker("test-tiny", device=args.device), args.batch, args.runs),
        },
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()

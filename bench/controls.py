"""GPU benchmark: seconds per frame of the depth and pose controls against canny (issue 11).

SD1.5-shaped random weights (``tiny.build_components("sd15")``; a depth or OpenPose ControlNet has
the canny one's shape), and random-weight annotators of the real ones' shapes: Depth Anything V2
Small (transformers' default ``DepthAnythingConfig``, DINOv2-S at 518 px) and ViTPose-base
(``VitPoseConfig``'s default ViT-B at 256×192). One job, the engine's defaults (DPM++ 12 steps,
strength 0.6), 512×512, eager (the compiled step is canny's only). Reports s/frame per control and
the annotator's own ms per frame.

    python bench/controls.py --out bench/results/controls.json                           # on the GPU
    python bench/controls.py --shape tiny --size 64 --device cpu --frames 2               # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from gpu_chain import build, sync
from transformers import (
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    DPTImageProcessor,
    VitPoseConfig,
    VitPoseForPoseEstimation,
    VitPoseImageProcessor,
)

from engine.render.chain import render_frames
from engine.render.steps.annotate import DepthAnnotator, PoseAnnotator
from engine.render.weights import tiny, tiny_controls
from engine.request.params import RenderParams


def annotators(shape: str, device: torch.device, dtype: torch.dtype) -> dict:
    if shape == "tiny":
        depth_model, depth_processor = tiny_controls.build_depth_annotator()
        pose_model, pose_processor = tiny_controls.build_pose_annotator()
    else:
        torch.manual_seed(0)
        depth_model = DepthAnythingForDepthEstimation(DepthAnythingConfig())
        depth_processor = DPTImageProcessor(
            size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14
        )
        pose_model = VitPoseForPoseEstimation(VitPoseConfig(num_labels=17))
        pose_processor = VitPoseImageProcessor()
    return {
        "depth": DepthAnnotator(depth_model.to(dtype), depth_processor, device),
        "pose": PoseAnnotator(pose_model.to(dtype), pose_processor, device),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="sd15", choices=tiny.SHAPES)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    base = build(args.shape, device, dtype)
    hint = tiny._CONTROLNET_HINT_CHANNELS[args.shape]
    found = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "rows": {}}
    makers = annotators(args.shape, device, dtype)
    frame = np.random.RandomState(0).randint(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    params = RenderParams(prompt="a dancer on a stage", frames=args.frames, width=args.size, height=args.size, seed=1)
    for control in ("canny", "depth", "pose"):
        components = base
        if control != "canny":
            controlnet = tiny_controls.build_controlnet(base.unet, control, hint).to(device, dtype)
            components = dataclasses.replace(base, controlnet=controlnet, annotator=makers[control])
        list(render_frames(components, dataclasses.replace(params, frames=2)))  # warm-up
        sync(device)
        started = time.perf_counter()
        list(render_frames(components, dataclasses.replace(params, control=control)))
        sync(device)
        seconds = (time.perf_counter() - started) / args.frames
        row = {"s_per_frame": round(seconds, 4)}
        if control != "canny":
            sync(device)
            began = time.perf_counter()
            for _ in range(5):
                makers[control](frame)
            sync(device)
            row["annotator_ms"] = round((time.perf_counter() - began) / 5 * 1000, 1)
        found["rows"][control] = row
        print(control, row, flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()

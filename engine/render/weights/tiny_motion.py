"""A random-weight AnimateDiff motion adapter that fits the tiny UNet (``motion_adapter = "test-tiny"``).

Diffusers' own test sizes (``tests/pipelines/animatediff``): two norm groups, four heads, with the
tiny UNet's ``block_out_channels`` and its one layer per block (diffusers' tests use two motion
layers because their UNet has two; ``UNetMotionModel.from_unet2d`` refuses a mismatch). Saved as a diffusers repo by
``engine.render.weights.builtin.built_motion`` and loaded with ``MotionAdapter.from_pretrained``
like a real one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from diffusers import MotionAdapter

from engine.render.weights import tiny

LAYOUT = {
    "block_out_channels": tiny._UNET["tiny"]["block_out_channels"],
    "motion_layers_per_block": tiny._UNET["tiny"]["layers_per_block"],  # from_unet2d wants the UNet's
    "motion_norm_num_groups": 2,
    "motion_num_attention_heads": 4,
}
SEED = 0


def build_adapter(seed: int = SEED) -> MotionAdapter:
    torch.manual_seed(seed)
    return MotionAdapter(**LAYOUT).eval()


def fingerprint() -> str:
    return hashlib.sha256(json.dumps(LAYOUT, sort_keys=True).encode()).hexdigest()[:12]


def save_tiny_adapter(directory: str | Path) -> Path:
    directory = Path(directory)
    build_adapter().save_pretrained(directory, safe_serialization=True)
    return directory

"""A random-weight ``StableDiffusionSafetyChecker`` built in code (the ``test-tiny`` safety checker).

The real checker's layout (a CLIP vision tower, its projection, 17 concept and 3 special-care
embeddings with a threshold each) at a few thousand parameters, saved as a transformers repo with its
``CLIPImageProcessor``, so it loads through ``engine.render.safety_checker``'s ``from_pretrained``
like ``CompVis/stable-diffusion-safety-checker``.

Every threshold is 1.0, the largest cosine similarity there is: no concept score is ever above 0, so
the tiny checker never flags a picture at the default threshold, and flags every one at threshold
0 (``[safety] threshold = 0``, which the tests use). A test that needs a mix sets the thresholds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor

_VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}
_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
PROJECTION_DIM = 16
SIDE = 32  # the processor's resize and crop: pictures are checked at 32x32


def fingerprint() -> str:
    """A short hash of the layout, so a saved tiny checker goes stale when it changes."""
    layout = [_VISION, _TEXT, PROJECTION_DIM, SIDE, "thresholds 1.0"]
    return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:12]


def build_checker(seed: int = 0) -> StableDiffusionSafetyChecker:
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=_TEXT, vision_config=_VISION, projection_dim=PROJECTION_DIM)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds.copy_(torch.randn_like(checker.concept_embeds))
        checker.special_care_embeds.copy_(torch.randn_like(checker.special_care_embeds))
        checker.concept_embeds_weights.fill_(1.0)
        checker.special_care_embeds_weights.fill_(1.0)
    return checker


def save_tiny_checker(directory: str | Path, seed: int = 0) -> Path:
    """Save the tiny checker and its processor in ``directory`` (``config.json``, ``model.safetensors``,
    ``preprocessor_config.json``); returns ``directory``."""
    directory = Path(directory)
    build_checker(seed).save_pretrained(directory, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE}).save_pretrained(
        directory
    )
    return directory

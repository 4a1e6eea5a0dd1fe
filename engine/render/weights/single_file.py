"""Single-file checkpoints: one ``.safetensors`` in the original Stable Diffusion layout, as model sites share them.

Loaded with diffusers' ``from_single_file``, offline: the base model's local diffusers folder
serves as ``config`` (its ``unet/config.json``, tokenizer, scheduler ...), so nothing is fetched at
render time. The file's header is checked first (``engine.render.weights.weights_check``), so a file that is
not SD1.5, or not shaped like the base model, is one sentence rather than a conversion traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

from engine.errors import UserError
from engine.render.weights.weights_check import check_sd15_checkpoint


def base_cross_attention_dim(config_dir: Path) -> int | None:
    """The cross-attention width of the base model's UNet (768 for SD1.5), from its config."""
    try:
        return int(json.loads((config_dir / "unet" / "config.json").read_text())["cross_attention_dim"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def load_pipeline(
    path: str | Path,
    config_dir: Path,
    controlnet: ControlNetModel,
    dtype: torch.dtype,
    what: str,
) -> StableDiffusionControlNetPipeline:
    """The ControlNet pipeline of the checkpoint at ``path``, configured by the diffusers folder ``config_dir``."""
    # 1. check the header: SD1.5, and the base model's shape
    check_sd15_checkpoint(path, what, base_cross_attention_dim(config_dir))
    # 2. convert and load, with nothing fetched
    try:
        return StableDiffusionControlNetPipeline.from_single_file(
            str(Path(path).expanduser()),
            config=str(config_dir),
            controlnet=controlnet,
            dtype=dtype,
            local_files_only=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (KeyError, RuntimeError, ValueError) as err:  # missing or misshapen tensors in the conversion
        raise UserError(
            f"{what} ({path}) could not be read as a Stable Diffusion 1.5 checkpoint ({type(err).__name__}); "
            "check that it is a full SD1.5 model, not a LoRA or an SDXL file."
        ) from err

"""Checks of configured weight files from their ``.safetensors`` header alone: no torch, no tensor read.

``animabot run`` (and ``worker``) check every configured single-file checkpoint and LoRA at start,
so a truncated download or a file of the wrong kind is one clear sentence then, not a crash
mid-queue. The header is 8 bytes of little-endian length, then JSON naming each tensor's dtype,
shape and byte range; a file shorter than the ranges it declares is truncated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine.errors import UserError
from engine.render.weights import builtin
from engine.request.catalog import Catalog, ModelEntry

MAX_HEADER_BYTES = 100 * 1024 * 1024
SD15_CROSS_ATTENTION = 768  # the width of SD1.5's text embeddings, which its UNet attends to
UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD1.x's CLIP text encoder (SD2 has cond_stage_model.model.)
_CROSS_ATTENTION = re.compile(r"^model\.diffusion_model\..*attn2\.to_k\.weight$")


def read_header(path: str | Path, what: str) -> dict[str, dict]:
    """The tensors a ``.safetensors`` file declares (name → dtype, shape, data_offsets).

    ``UserError`` naming ``what`` (e.g. "LoRA pixel") when the file is missing, not a safetensors
    file, or shorter than its header says.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"The file of {what}, {path}, does not exist; check the path in the config.")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
                raise ValueError("bad header length")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        header.pop("__metadata__", None)
        end = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        raise UserError(
            f"The file of {what}, {path}, is not a readable .safetensors file (damaged or not safetensors); "
            "download it again."
        ) from None
    if 8 + length + end > size:
        raise UserError(
            f"The file of {what}, {path}, is truncated ({size} of {8 + length + end} bytes); download it again."
        )
    return header


def check_sd15_checkpoint(
    path: str | Path, what: str, cross_attention_dim: int | None = SD15_CROSS_ATTENTION
) -> dict[str, dict]:
    """``UserError`` unless ``path`` is a single-file SD1.5 checkpoint (original layout) whose UNet's
    cross-attention width is ``cross_attention_dim`` (768 for SD1.5; None: not checked)."""
    header = read_header(path, what)
    names = header.keys()
    kind = _family(names)
    if kind is not None:
        raise UserError(
            f"{what} ({path}) is {kind} checkpoint, not Stable Diffusion 1.5; animabot renders with SD1.5 models only."
        )
    if not any(n.startswith(UNET_PREFIX) for n in names) or not any(n.startswith(CLIP_PREFIX) for n in names):
        raise UserError(
            f"{what} ({path}) is not a Stable Diffusion 1.5 checkpoint (it has no UNet and CLIP weights in the "
            "original layout); use a full SD1.5 .safetensors, or a diffusers folder."
        )
    widths = {header[n]["shape"][-1] for n in names if _CROSS_ATTENTION.match(n)}
    if cross_attention_dim is not None and widths and widths != {cross_attention_dim}:
        raise UserError(
            f"{what} ({path}) is not a Stable Diffusion 1.5 checkpoint (its cross-attention width is "
            f"{', '.join(map(str, sorted(widths)))}, the base model's is {cross_attention_dim})."
        )
    return header


def check_lora_file(path: str | Path, what: str) -> dict[str, dict]:
    """``UserError`` unless ``path`` holds LoRA weights (diffusers/peft or kohya names)."""
    header = read_header(path, what)
    if not any("lora" in name.lower() for name in header):
        raise UserError(f"{what} ({path}) holds no LoRA weights; point the config at a LoRA .safetensors file.")
    return header


def expected_width(model_id: str) -> int | None:
    """The cross-attention width of single-file checkpoints read with ``model_id``'s configs: SD1.5's,
    or None (not checked) for a built-in model, whose random layers are narrower."""
    return None if builtin.is_builtin(model_id) else SD15_CROSS_ATTENTION


def check_catalog(catalog: Catalog, cross_attention_dim: int | None = SD15_CROSS_ATTENTION) -> list[str]:
    """Check every configured single-file checkpoint and LoRA; returns one line per file checked."""
    checked = []
    for entry in catalog.models.values():
        if entry.single_file:
            check_sd15_checkpoint(entry.model, _model_what(entry), cross_attention_dim)
            checked.append(f"model {entry.name}: {entry.model}")
    for lora in catalog.loras.values():
        check_lora_file(lora.file, f"LoRA {lora.name}")
        checked.append(f"LoRA {lora.name}: {lora.file}")
    return checked


def _model_what(entry: ModelEntry) -> str:
    return f"model {entry.name}"


def _family(names) -> str | None:
    """The other model family a checkpoint's tensor names show, if any."""
    if any(n.startswith("conditioner.embedders.") for n in names):
        return "an SDXL"
    if any(n.startswith("cond_stage_model.model.") for n in names):
        return "a Stable Diffusion 2"
    if any(n.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for n in names):
        return "a Flux"
    return None

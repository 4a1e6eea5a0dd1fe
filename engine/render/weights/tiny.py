"""Random-weight Stable Diffusion 1.5 + ControlNet parts built in code (nothing downloads).

Two shapes:

- ``"tiny"``: a few thousand-parameter look-alike with the real structure (8x VAE downscale,
  4 latent channels, cross-attention, a ControlNet made from the UNet, a real ``CLIPTokenizer``),
  small enough to render a 512x512 frame on a CPU in a fraction of a second. Tests and
  ``model = "test-tiny"`` use it.
- ``"sd15"``: the real SD1.5 layer sizes with random weights: the same FLOPs as the real model,
  for GPU benchmarks on machines that cannot download the weights.

``save_test_tiny`` writes the parts (of either shape) as diffusers repos, so they load through the same
``from_pretrained`` calls as real weights. Every ControlNet here has small random output weights
(``engine.render.weights.tiny_controls``), so control maps and control scales change the frames; the depth
and pose ControlNets and their annotators are built there too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.render.weights import tiny_controls

SHAPES = ("tiny", "sd15")

# The byte-level vocab: 256 byte symbols, the same with the end-of-word mark, then the two
# special tokens (the real CLIP vocab ends with them too).
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
BYTE_VOCAB_SIZE = 256 * 2 + 2
BOS_TOKEN_ID = 512
EOS_TOKEN_ID = 513
MAX_TOKENS = 77

# SD1.5's scheduler settings, with DPM-Solver++ in place of PNDM.
SD15_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "algorithm_type": "dpmsolver++",
    "solver_order": 2,
}

_UNET = {
    "tiny": {
        # Cross-attention only at the lowest resolution (16x16 latents for a 512x512 image):
        # attention at 32x32 would cost more than the rest of the step.
        "block_out_channels": (8, 16, 32),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "cross_attention_dim": 32,
        "attention_head_dim": 4,
        "norm_num_groups": 4,
    },
    "sd15": {
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
}

# The ControlNet's hint encoder runs at full image resolution: the real (16, 32, 96, 256) costs
# more than the whole tiny UNet at 512x512, so the tiny one is narrower.
_CONTROLNET_HINT_CHANNELS = {"tiny": (4, 8, 8, 16), "sd15": (16, 32, 96, 256)}

_VAE = {
    "tiny": {"block_out_channels": (8, 8, 16, 16), "layers_per_block": 1, "norm_num_groups": 4},
    "sd15": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32},
}

_TEXT = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    "sd15": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's map from bytes to printable characters (the byte-level BPE alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def byte_vocab() -> dict[str, int]:
    """The tiny tokenizer's vocab: each byte symbol, each with ``</w>``, then BOS and EOS."""
    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": i + 256 for i, s in enumerate(symbols)})
    vocab[BOS_TOKEN] = BOS_TOKEN_ID
    vocab[EOS_TOKEN] = EOS_TOKEN_ID
    return vocab


def build_tokenizer() -> CLIPTokenizer:
    """A real ``CLIPTokenizer`` over the byte vocab with no merges (every byte is a token)."""
    with tempfile.TemporaryDirectory(prefix="animabot-tok-") as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps(byte_vocab()), encoding="utf-8")
        Path(tmp, "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=MAX_TOKENS)


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")


def build_unet(shape: str = "tiny") -> UNet2DConditionModel:
    _check_shape(shape)
    return UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, **_UNET[shape])


def build_vae(shape: str = "tiny") -> AutoencoderKL:
    _check_shape(shape)
    cfg = _VAE[shape]
    blocks = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        sample_size=512,
        scaling_factor=0.18215,
        **cfg,
    )


def build_text_encoder(shape: str = "tiny") -> CLIPTextModel:
    _check_shape(shape)
    config = CLIPTextConfig(
        vocab_size=BYTE_VOCAB_SIZE,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=EOS_TOKEN_ID,
        hidden_act="quick_gelu",
        **_TEXT[shape],
    )
    return CLIPTextModel(config)


def build_scheduler() -> DPMSolverMultistepScheduler:
    return DPMSolverMultistepScheduler(**SD15_SCHEDULER)


def build_components(shape: str = "tiny", seed: int = 0) -> dict:
    """The parts of an SD1.5 + ControlNet pipeline with random weights; the same seed gives the same weights.

    Keys: ``unet``, ``controlnet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``.
    """
    _check_shape(shape)
    torch.manual_seed(seed)
    unet = build_unet(shape)
    controlnet = tiny_controls.build_controlnet(unet, "canny", _CONTROLNET_HINT_CHANNELS[shape], seed)
    torch.manual_seed(seed)
    vae = build_vae(shape)
    torch.manual_seed(seed)
    text_encoder = build_text_encoder(shape)
    parts = {
        "unet": unet,
        "controlnet": controlnet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": build_tokenizer(),
        "scheduler": build_scheduler(),
    }
    for name in ("unet", "controlnet", "vae", "text_encoder"):
        parts[name].eval()
    return parts


def fingerprint() -> str:
    """A short hash of the tiny layout, so a cache of saved tiny weights goes stale when it changes."""
    layout = [
        _UNET["tiny"],
        _CONTROLNET_HINT_CHANNELS["tiny"],
        _VAE["tiny"],
        _TEXT["tiny"],
        SD15_SCHEDULER,
        BYTE_VOCAB_SIZE,
        tiny_controls.LAYOUT,
    ]
    return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:12]


def save_test_tiny(
    directory: str | Path, seed: int = 0, *, shape: str = "tiny", dtype: torch.dtype = torch.float32
) -> Path:
    """Save the random parts of ``shape`` as diffusers repos: ``directory/sd`` and ``directory/controlnet``
    (canny); for ``"tiny"`` also the depth and pose ControlNets and annotators
    (``tiny_controls.save_tiny_controls``). The weights are saved in ``dtype``: float16 keeps the
    SD1.5-shaped ones at 2.7 GB rather than 5.5 GB.

    ``directory/sd`` loads with ``StableDiffusionPipeline.from_pretrained`` (no safety checker);
    ``directory/controlnet`` with ``ControlNetModel.from_pretrained``. Returns ``directory``.
    """
    directory = Path(directory)
    parts = build_components(shape, seed=seed)
    for name in ("unet", "controlnet", "vae", "text_encoder"):
        parts[name].to("cpu", dtype)
    pipe = StableDiffusionPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        unet=parts["unet"],
        scheduler=parts["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory / "sd", safe_serialization=True)
    parts["controlnet"].save_pretrained(directory / "controlnet", safe_serialization=True)
    if shape == "tiny":  # the annotators are tiny-only; SD1.5-shaped benchmarks offer canny alone
        tiny_controls.save_tiny_controls(directory, parts["unet"], _CONTROLNET_HINT_CHANNELS[shape], seed)
    return directory

"""Tiny weight files in the formats hosts download: a LoRA (diffusers and kohya layouts) and a
single-file checkpoint in the original Stable Diffusion layout, all built in code from test-tiny.

The LoRA is peft on the tiny UNet and text encoder with random (non-zero) weights, so it changes
frames. The single-file checkpoint renames test-tiny's diffusers keys to the original (LDM) names
with the mapping below: the reverse of what diffusers' ``from_single_file`` converts, written for
any ``layers_per_block`` and block count (the tiny UNet has 3 blocks of 1 layer, SD1.5 4 of 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

from engine.render.weights import tiny
from engine.render.weights.builtin import built_folder

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


# -- LoRA --------------------------------------------------------------------------------------------
def tiny_lora_layers(seed: int = 0, rank: int = 4, shape: str = "tiny") -> tuple[dict, dict]:
    """peft LoRA state dicts ``(unet, text_encoder)`` for test-tiny (or ``shape`` "sd15"), random and non-zero."""
    torch.manual_seed(0)
    unet = tiny.build_unet(shape)
    torch.manual_seed(0)
    text_encoder = tiny.build_text_encoder(shape)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=UNET_TARGETS, init_lora_weights=False))
    # peft directly: transformers' own add_adapter wants a newer peft than PyPI has (5.24 asks for 0.22)
    text_config = LoraConfig(r=rank, lora_alpha=rank, target_modules=TEXT_TARGETS, init_lora_weights=False)
    text_encoder = inject_adapter_in_model(text_config, text_encoder)
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for model in (unet, text_encoder):
        state = get_peft_model_state_dict(model)
        layers.append({k: torch.randn(v.shape, generator=generator) * 0.3 for k, v in state.items()})
    return layers[0], layers[1]


def save_diffusers_lora(path: Path, seed: int = 0, shape: str = "tiny") -> Path:
    """The LoRA as diffusers saves it (``unet.``/``text_encoder.`` prefixed peft keys)."""
    unet, text = tiny_lora_layers(seed, shape=shape)
    state = {f"unet.{k}": v for k, v in unet.items()} | {f"text_encoder.{k}": v for k, v in text.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def save_kohya_lora(path: Path, seed: int = 0) -> Path:
    """The same LoRA in kohya's layout: ``lora_unet_<module path with _>.lora_down/lora_up.weight`` and ``.alpha``."""
    unet, text = tiny_lora_layers(seed)
    state = {}
    for prefix, layers in (("lora_unet", unet), ("lora_te", text)):
        for key, value in layers.items():
            module, _, kind = key.rpartition(".lora_")  # "....to_q", "A.weight"
            name = f"{prefix}_{module.replace('.', '_')}"
            state[f"{name}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = value
            if kind.startswith("A"):
                state[f"{name}.alpha"] = torch.tensor(float(value.shape[0]))  # alpha = rank: scale 1
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


# -- single-file checkpoint ----------------------------------------------------------------------------
def _unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) for the UNet's blocks."""
    n, layers = len(config["block_out_channels"]), config["layers_per_block"]
    per = layers + 1  # original input/output blocks per level: the layers, then a down/upsampler (or one more layer)
    prefixes = []
    for i in range(n):
        for j in range(layers):
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{per * i + j + 1}.0."))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{per * i + j + 1}.1."))
        prefixes.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{per * (i + 1)}.0.op."))
        with_attention = "CrossAttn" in config["up_block_types"][i]
        for j in range(per):
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{per * i + j}.0."))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{per * i + j}.1."))
        prefixes.append(
            (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{per * i + layers}.{2 if with_attention else 1}.")
        )
    prefixes += [("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0.")]
    prefixes += [("mid_block.resnets.1.", "middle_block.2.")]
    return prefixes


_UNET_EXACT = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}
_RESNET |= {"time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _rename(key: str, prefixes: list[tuple[str, str]]) -> tuple[str, str] | None:
    for hf, sd in sorted(prefixes, key=lambda p: -len(p[0])):
        if key.startswith(hf):
            return sd, key[len(hf) :]
    return None


def unet_to_original(state: dict, config: dict) -> dict:
    out = {}
    prefixes = _unet_prefixes(config)
    for key, value in state.items():
        found = _rename(key, list(_UNET_EXACT.items()))
        if found is None:
            found = _rename(key, prefixes)
            if found is None:
                raise KeyError(f"no original name for UNet key {key}")
            if ".resnets." in key:
                first, _, rest = found[1].partition(".")
                found = (found[0], f"{_RESNET.get(first, first)}.{rest}")
        out["model.diffusion_model." + found[0] + found[1]] = value
    return out


def vae_to_original(state: dict, config: dict) -> dict:
    n, layers = len(config["block_out_channels"]), config["layers_per_block"]
    prefixes = []
    for part in ("encoder", "decoder"):
        prefixes.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."))
        prefixes += [(f"{part}.mid_block.resnets.{i}.", f"{part}.mid.block_{i + 1}.") for i in range(2)]
    for i in range(n):
        prefixes += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(layers)]
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        up = n - 1 - i  # the original numbers the decoder's levels from the bottom
        prefixes += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}.") for j in range(layers + 1)]
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{up}.upsample."))
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in state.items():
        found = _rename(key, prefixes)
        name = key if found is None else found[0] + found[1]
        if found is not None and found[0].endswith("attn_1."):
            for hf, sd in attention.items():
                if found[1].startswith(hf):
                    name = found[0] + sd + found[1][len(hf) :]
                    if name.endswith("weight") and value.ndim == 2:
                        value = value[:, :, None, None]  # linear → 1x1 conv
        name = name.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        out["first_stage_model." + name] = value
    return out


def save_single_file(path: Path, seed: int = 1) -> Path:
    """test-tiny (``seed`` 1: the weights of test-tiny-2) as one original-layout ``.safetensors``."""
    sd = built_folder(seed) / "sd"
    unet_config = json.loads((sd / "unet" / "config.json").read_text())
    vae_config = json.loads((sd / "vae" / "config.json").read_text())
    state = unet_to_original(load_file(str(sd / "unet" / "diffusion_pytorch_model.safetensors")), unet_config)
    state |= vae_to_original(load_file(str(sd / "vae" / "diffusion_pytorch_model.safetensors")), vae_config)
    text = load_file(str(sd / "text_encoder" / "model.safetensors"))
    # transformers 5 saves CLIPTextModel without its "text_model." prefix; the original layout has it
    state |= {f"cond_stage_model.transformer.text_model.{k.removeprefix('text_model.')}": v for k, v in text.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path

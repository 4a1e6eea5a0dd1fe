"""Model-switch and LoRA-switch benchmark (issue 13).

    python bench/model_switch.py                                  # CPU, test-tiny
    python bench/model_switch.py --shape sd15 --device cuda --out bench/results/model-switch-gpu.json

1. Model switch: a ``ModelCache`` holding one model serves two models in turn, so every ``get``
   loads one from disk (``from_pretrained`` of a diffusers folder onto the device) after evicting
   the other; the time of each switch is what a job waits when its model is not loaded.
   ``--shape sd15`` saves two random-weight SD1.5-shaped pipelines first (the real model's size).
2. LoRA switch: on one loaded model with two LoRAs loaded, switching the active one with
   ``set_adapters`` (what the engine does per batch) against ``fuse_lora`` + ``unfuse_lora``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch
from diffusers import StableDiffusionPipeline
from support import tiny_checkpoints

from engine.config import EngineConfig
from engine.render.weights import tiny
from engine.render.weights.model_cache import ModelCache
from engine.request.catalog import build_catalog


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def save_pipelines(shape: str, folder: Path) -> tuple[str, str, str]:
    """Two random-weight pipelines of ``shape`` and their ControlNet, as diffusers folders."""
    paths = []
    for seed in (0, 1):
        parts = tiny.build_components(shape, seed=seed)
        pipe = StableDiffusionPipeline(
            vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=parts["unet"],
            scheduler=parts["scheduler"], safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
        pipe.save_pretrained(folder / f"sd{seed}", safe_serialization=True)
        paths.append(str(folder / f"sd{seed}"))
        if seed == 0:
            parts["controlnet"].save_pretrained(folder / "controlnet", safe_serialization=True)
    return paths[0], paths[1], str(folder / "controlnet")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=tiny.SHAPES, default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--switches", type=int, default=6)
    parser.add_argument("--lora-switches", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="animabot-switch-") as tmp:
        tmp = Path(tmp)
        if args.shape == "tiny":
            first, second, controlnet = "test-tiny", "test-tiny-2", "test-tiny"
        else:
            first, second, controlnet = save_pipelines(args.shape, tmp)
        loras = {
            name: {
                "file": str(tiny_checkpoints.save_diffusers_lora(tmp / f"{name}.safetensors", seed, shape=args.shape))
            }
            for seed, name in enumerate(("a", "b"))
        }
        catalog = build_catalog(first, {"second": {"model": second}}, loras)
        engine = EngineConfig(model=first, controlnet=controlnet, device=args.device)
        cache = ModelCache(catalog, engine, max_loaded=1)

        # 1. model switches (the first load also builds caches: not counted)
        cache.get("default")
        switches = []
        for i in range(args.switches):
            started = time.perf_counter()
            cache.get("second" if i % 2 == 0 else "default")
            _sync(args.device)
            switches.append(time.perf_counter() - started)

        # 2. LoRA switches on the loaded model
        loaded = cache.get("default")
        loaded.use_loras(catalog, [("a", 1.0)])
        loaded.use_loras(catalog, [("b", 1.0)])
        pipe = loaded.components.shared_pipeline
        adapters = []
        for i in range(args.lora_switches):
            started = time.perf_counter()
            loaded.use_loras(catalog, [("a" if i % 2 == 0 else "b", 1.0)])
            _sync(args.device)
            adapters.append(time.perf_counter() - started)
        pipe.disable_lora()
        fused = []
        for i in range(args.lora_switches):
            started = time.perf_counter()
            name = "a" if i % 2 == 0 else "b"
            pipe.enable_lora()
            pipe.set_adapters([name], [1.0])
            pipe.fuse_lora(adapter_names=[name], lora_scale=1.0)
            pipe.unfuse_lora()
            _sync(args.device)
            fused.append(time.perf_counter() - started)

    result = {
        "shape": args.shape,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model_switch_s": {"median": statistics.median(switches), "max": max(switches), "all": switches},
        "lora_set_adapters_ms": {"median": 1000 * statistics.median(adapters), "max": 1000 * max(adapters)},
        "lora_fuse_unfuse_ms": {"median": 1000 * statistics.median(fused), "max": 1000 * max(fused)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""GPU benchmark: the tutorial's chain as written against the engine.

One run, SD1.5-shaped random weights (same FLOPs as the real model), fp16, reporting seconds per
frame, frames per second and peak GPU memory for:
  1. the tutorial's chain as written (prompt re-encoded every frame, a new seed every frame,
     PNDM 20 steps, guidance 7.5, ControlNet scale 1.2, Canny of the previous frame);
  2. the engine, one job, 20 steps (same work as 1);
  3. the engine, one job, its defaults;
  4. the engine serving 8 concurrent jobs (aggregate frames per second), 20 steps and defaults.
Rows 2-4 run with every speed-up on (compiled step and VAE); rows marked ``_vae_eager`` repeat 3
and 4b with the VAE eager, so each speed-up is measured alone. Rows call the render rounds
directly: the runtime writes the PNG frames and previews on file threads while the next round
renders, and ``bench/e2e.py`` measures the whole path through the bot.
Also: compile/warm-up time, a breakdown of one frame's parts (ms), a restarted process's time to
full speed (inductor's disk cache), and how far the compiled fp16 frames are from the eager ones
for the same seed.

    python bench/gpu_chain.py --out bench/results/h100.json              # on the GPU
    python bench/gpu_chain.py --shape tiny --size 64 --device cpu --frames 2 --jobs 2 --backend eager  # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from machine import machine  # bench/machine.py: this script's folder is on sys.path

from engine.config import load_config
from engine.render import accel
from engine.render.chain import FrameChain, render_round
from engine.render.frames import save_frame
from engine.render.steps.control import canny
from engine.render.weights import tiny
from engine.render.weights.models import Components
from engine.request.params import RenderParams
from engine.video.preview import preview_jpeg

PROMPT = "a cat in a sunflower field, golden hour, highly detailed"
NEGATIVE = "blurry, low quality"


def build(shape: str, device: torch.device, dtype: torch.dtype) -> Components:
    with torch.device(device):
        parts = tiny.build_components(shape)
    modules = {k: parts[k].to(device, dtype).eval() for k in ("unet", "controlnet", "vae", "text_encoder")}
    return Components(
        **modules,
        tokenizer=parts["tokenizer"],
        scheduler_config=dict(parts["scheduler"].config),
        device=device,
        dtype=dtype,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device, fn) -> dict:
    """Run ``fn`` (returns frames made) once, timing it and its peak GPU memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    started = time.perf_counter()
    frames = fn()
    sync(device)
    seconds = time.perf_counter() - started
    row = {
        "frames": frames,
        "seconds": round(seconds, 3),
        "s_per_frame": round(seconds / frames, 4),
        "frames_per_s": round(frames / seconds, 3),
    }
    if device.type == "cuda":
        row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return row


# -- 1. the tutorial's chain, as written ----------------------------------------------------------
def tutorial_chain(components: Components, frames: int, size: int) -> int:
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    pipe = components.pipeline()
    pipe.scheduler = PNDMScheduler.from_config(components.scheduler_config, skip_prk_steps=True)
    pipe.set_progress_bar_config(disable=True)
    text2img = StableDiffusionPipeline.from_pipe(pipe, dtype=components.dtype)  # else it casts to fp32
    text2img.set_progress_bar_config(disable=True)
    seed = 1000
    image = text2img(
        PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=20,
        guidance_scale=7.5,
        height=size,
        width=size,
        generator=torch.Generator(components.device).manual_seed(seed),
        output_type="np",
    ).images[0]
    for k in range(1, frames):
        control = canny((image * 255).round().astype(np.uint8), RenderParams(prompt=PROMPT))
        image = pipe(
            PROMPT,
            negative_prompt=NEGATIVE,
            image=control.astype(np.float32)[None] / 255.0,
            num_inference_steps=20,
            guidance_scale=7.5,
            controlnet_conditioning_scale=1.2,
            height=size,
            width=size,
            generator=torch.Generator(components.device).manual_seed(seed + k),
            output_type="np",
        ).images[0]
    return frames


# -- 2-4. the engine ------------------------------------------------------------------------------
def engine_jobs(components, params_list, predict, vae=None) -> tuple[int, list[FrameChain]]:
    chains = [FrameChain(components, params) for params in params_list]
    while not all(chain.done for chain in chains):
        live = [chain for chain in chains if not chain.done]
        render_round(components, live, predict=predict, vae=vae)
    return sum(len(chain.frames) for chain in chains), chains


def timed_ms(device, fn, repeat: int = 20) -> float:
    fn()
    sync(device)
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return round((time.perf_counter() - started) / repeat * 1000, 2)


@torch.inference_mode()
def breakdown(components, predict, vae, size: int, jobs: int) -> dict:
    """Where a frame's time goes: the model step, the VAE (eager and compiled), the scheduler, the CPU steps."""
    from engine.render import sampler
    from engine.render.steps.color import lab_stats, match_colors

    c, device = components, components.device
    out = {}
    for rows in (2, 2 * jobs):
        args = (
            torch.randn(rows, 4, size // 8, size // 8, device=device, dtype=c.dtype),
            torch.full((rows,), 500.0, device=device),
            torch.randn(rows, 77, c.text_encoder.config.hidden_size, device=device, dtype=c.dtype),
            torch.rand(rows, 3, size, size, device=device, dtype=c.dtype),
            torch.ones(rows, 1, 1, 1, device=device, dtype=c.dtype),
        )
        fn = predict or (lambda *a: accel.predict_noise(c.unet, c.controlnet, *a))
        out[f"model_step_rows_{rows}"] = timed_ms(device, lambda fn=fn, args=args: fn(*args))
    latents = torch.randn(1, 4, size // 8, size // 8, device=device)
    frame = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    for name, fast in [("", None)] + ([("_compiled", vae)] if vae is not None else []):
        for count in (1, jobs):
            out[f"vae_decode_{count}{name}"] = timed_ms(
                device, lambda count=count, fast=fast: sampler.decode(c, [latents] * count, fast)
            )
            out[f"vae_encode_{count}{name}"] = timed_ms(
                device, lambda count=count, fast=fast: sampler.encode(c, [frame] * count, fast)
            )
    out["png_save_cpu"] = timed_ms(device, lambda: save_frame(Path(tempfile.gettempdir()), 0, frame))
    out["preview_jpeg_cpu"] = timed_ms(device, lambda: preview_jpeg(frame))
    out["canny_cpu"] = timed_ms(device, lambda: canny(frame, RenderParams(prompt="x")))
    reference = lab_stats(frame)
    out["colour_match_cpu"] = timed_ms(device, lambda: match_colors(frame, reference))
    noise = torch.randn(1, 4, size // 8, size // 8, device=device)

    def scheduler_steps():
        s, ts = sampler.make_scheduler("dpm++", c.scheduler_config, 20, device)
        x = noise
        for t in ts:
            x = s.step(noise, t, x, return_dict=False)[0]

    out["scheduler_20_steps_incl_setup"] = timed_ms(device, scheduler_steps, repeat=5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="sd15", choices=tiny.SHAPES)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=6, help="frames per job in each row")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-mode", default="reduce-overhead", choices=("reduce-overhead", "max-autotune"))
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: a quick CPU smoke test)")
    parser.add_argument("--restart-check", action="store_true", help="time a second process's warm-up")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/animabot-inductor"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--warm-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    defaults = dataclasses.replace(
        load_config(Path(__file__).parents[1] / "config.example.toml").render,
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=args.size,
        height=args.size,
    )
    twenty = dataclasses.replace(defaults, steps=20, strength=0.0, scheduler="dpm++", guidance=7.5, control_scale=1.2)
    report = {
        "machine": {
            **machine(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        },
        "setup": {
            "shape": args.shape,
            "size": args.size,
            "dtype": str(dtype),
            "frames_per_job": args.frames,
            "jobs": args.jobs,
            "compile": not args.no_compile,
            "compile_mode": args.compile_mode,
            "defaults": {k: getattr(defaults, k) for k in ("steps", "scheduler", "strength", "guidance")},
        },
        "rows": {},
    }

    def save():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))

    started = time.perf_counter()
    components = build(args.shape, device, dtype)
    report["setup"]["build_seconds"] = round(time.perf_counter() - started, 1)
    print("built", report["setup"]["build_seconds"], "s", flush=True)

    if args.warm_only:  # the restarted process: how long until the compiled step and VAE run at speed
        accel.prepare(components)
        step = accel.CompiledStep(components, mode=args.compile_mode, cache_dir=args.cache_dir)
        vae = accel.CompiledVae(components.vae, cache_dir=args.cache_dir)
        seconds = step.warm_up(args.size, args.size, (2,)) + vae.warm_up(args.size, args.size, (1,))
        print(json.dumps({"warm_up_seconds": round(seconds, 1)}))
        return

    # Row 1: the tutorial, plain eager pipelines, before any of our changes to the modules.
    tutorial_chain(components, 1, args.size)  # warm-up
    report["rows"]["1_tutorial_chain"] = measure(device, lambda: tutorial_chain(components, args.frames, args.size))
    print("row 1", report["rows"]["1_tutorial_chain"], flush=True)
    save()

    eager_frames = engine_jobs(components, [dataclasses.replace(twenty, frames=2, seed=1)], None)[1][0].frames

    accel.prepare(components)
    predict = vae = None
    if not args.no_compile:
        try:
            predict = accel.CompiledStep(
                components, mode=args.compile_mode, cache_dir=args.cache_dir, backend=args.backend
            )
            for rows in (2, 2 * args.jobs):
                seconds = predict.warm_up(args.size, args.size, (rows,))
                report["setup"][f"compile_seconds_rows_{rows}"] = round(seconds, 1)
                print("compiled", rows, round(seconds, 1), flush=True)
        except Exception as err:
            report["setup"]["compile_error"] = repr(err)[:2000]
            print("compile failed, measuring eager:", repr(err)[:2000], flush=True)
            predict = None
        try:
            vae = accel.CompiledVae(components.vae, cache_dir=args.cache_dir, backend=args.backend)
            seconds = vae.warm_up(args.size, args.size, (1, args.jobs))
            report["setup"][f"compile_seconds_vae_1_and_{args.jobs}"] = round(seconds, 1)
            print("compiled the VAE", round(seconds, 1), flush=True)
        except Exception as err:
            report["setup"]["vae_compile_error"] = repr(err)[:2000]
            print("VAE compile failed, measuring it eager:", repr(err)[:2000], flush=True)
            vae = None
        save()

    report["breakdown_ms"] = breakdown(components, predict, vae, args.size, args.jobs)
    print("breakdown", report["breakdown_ms"], flush=True)
    save()

    fast_frames = engine_jobs(components, [dataclasses.replace(twenty, frames=2, seed=1)], predict, vae)[1][0].frames
    report["setup"]["max_abs_diff_vs_eager_uint8"] = int(
        max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(eager_frames, fast_frames))
    )
    report["setup"]["mean_abs_diff_vs_eager_uint8"] = round(
        float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(eager_frames, fast_frames)])), 3
    )

    rows = {
        "2_engine_1_job_20_steps": [dataclasses.replace(twenty, frames=args.frames, seed=1)],
        "3_engine_1_job_defaults": [dataclasses.replace(defaults, frames=args.frames, seed=1)],
        f"4a_engine_{args.jobs}_jobs_20_steps": [
            dataclasses.replace(twenty, frames=args.frames, seed=s) for s in range(args.jobs)
        ],
        f"4b_engine_{args.jobs}_jobs_defaults": [
            dataclasses.replace(defaults, frames=args.frames, seed=s) for s in range(args.jobs)
        ],
    }
    runs = [(name, params_list, vae) for name, params_list in rows.items()]
    if vae is not None:  # the same rows with the VAE eager: what compiling it gives, alone
        runs += [(f"{name}_vae_eager", rows[name], None) for name in list(rows)[1::2]]
    for name, params_list, fast in runs:
        engine_jobs(components, [dataclasses.replace(p, frames=2) for p in params_list], predict, fast)  # warm-up
        report["rows"][name] = measure(
            device, lambda pl=params_list, f=fast: engine_jobs(components, pl, predict, f)[0]
        )
        print(name, report["rows"][name], flush=True)
        save()

    base = report["rows"]["1_tutorial_chain"]["s_per_frame"]
    for row in report["rows"].values():
        row["speedup_vs_row_1"] = round(base / row["s_per_frame"], 2)

    if args.restart_check and predict is not None:
        cmd = [
            sys.executable,
            __file__,
            "--warm-only",
            "--shape",
            args.shape,
            "--size",
            str(args.size),
            "--device",
            args.device,
            "--cache-dir",
            str(args.cache_dir),
            "--compile-mode",
            args.compile_mode,
        ]
        started = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        total = time.perf_counter() - started
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
        report["setup"]["restart"] = {
            "process_seconds": round(total, 1),
            **json.loads(last if last.startswith("{") else "{}"),
        }
        print("restart", report["setup"]["restart"], flush=True)
    save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

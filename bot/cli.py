"""The ``animabot`` command: ``run`` (bot + engine), ``render`` (no Discord), ``worker``, ``models``.

It lives on the bot side because ``run`` needs both halves; ``render``, ``worker`` and ``models``
only import the engine, and torch is imported only by the commands that render.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from engine.config import Config, load_config
from engine.errors import UserError
from engine.render.params import parse_size

log = logging.getLogger("animabot")

# transformers warns at import about optional image processors the engine never uses.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _render_args(sub) -> None:
    p = sub.add_parser("render", help="render a clip locally, without Discord")
    p.add_argument("prompt", help='text, or keyframes like "0: a cat | 24: a tiger"')
    p.add_argument("-o", "--out", type=Path, default=None, help="output MP4 (default: animabot-seed<SEED>.mp4)")
    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument("--frames", type=int)
    p.add_argument("--fps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--strength", type=float, help="img2img from the previous frame, 0 = off")
    p.add_argument("--control-scale", type=float)
    p.add_argument(
        "--motion", help="none, zoom-in, zoom-out, pan-left, pan-right, pan-up, pan-down, rotate-cw, rotate-ccw"
    )
    p.add_argument("--motion-amount", type=float)
    p.add_argument("--scheduler", help="dpm++, pndm, euler or unipc")
    p.add_argument("--size", help="WIDTHxHEIGHT, multiples of 8")
    p.add_argument("--model", help="hub id, local folder or test-tiny (overrides the config)")
    p.add_argument("--audio", type=Path, help="mux this audio file into the result")
    p.add_argument("--device", help="auto, cuda, cuda:N or cpu (overrides the config)")
    # -- starting from a picture, and the control type (issue 11)
    p.add_argument("--image", type=Path, help="start from this picture: it is frame 0 (fitted to --size)")
    p.add_argument("--image-strength", type=float, help="0 keeps the picture as frame 0; up to 1 re-draws it")
    p.add_argument("--control", help="what holds frames together: canny (edges), depth or pose")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animabot", description="Text to short AI video, on Discord or locally.")
    parser.add_argument("--config", type=Path, default=None, help="config file (default: ./config.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the Discord bot and the engine in one process")
    run.add_argument(
        "--no-engine", action="store_true", help="run the bot alone; renders are served by `animabot worker` processes"
    )
    _render_args(sub)
    worker = sub.add_parser("worker", help="run the GPU engine alone, serving the shared job store")
    worker.add_argument("--device", help="e.g. cuda:1 (one worker per GPU)")
    models = sub.add_parser("models", help="manage model weights")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    download = models_sub.add_parser("download", help="fetch the configured weights (for offline GPU hosts)")
    download.add_argument("--to", type=Path, default=None, help="save as local folders here instead of the HF cache")
    download.add_argument("--model", help="override [engine] model")
    download.add_argument("--controlnet", help="override [engine] controlnet")
    # `--config` may also come after the sub-command, as the README shows.
    for p in (run, sub.choices["render"], worker, download):
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _engine_config(config: Config, **overrides) -> Config:
    import dataclasses

    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine, **given))


def _picture(args):
    """The fitted picture of ``--image`` (None without it), sized by ``--size`` or by its aspect."""
    if args.image is None:
        return None
    from engine.render.picture import prepare_picture, read_picture_file

    return prepare_picture(read_picture_file(args.image), parse_size(args.size) if args.size else None)


def cmd_render(args, config: Config) -> int:
    picture = _picture(args)
    size = parse_size(args.size) if args.size else (None, None)
    if picture is not None and not args.size:
        size = picture.pixels.shape[1], picture.pixels.shape[0]
    params = (
        config.defaults(
            args.prompt,
            negative_prompt=args.negative,
            frames=args.frames,
            fps=args.fps,
            seed=args.seed,
            steps=args.steps,
            guidance=args.guidance,
            strength=args.strength,
            control_scale=args.control_scale,
            motion=args.motion,
            motion_amount=args.motion_amount,
            scheduler=args.scheduler,
            width=size[0],
            height=size[1],
            control=args.control,
            image_strength=args.image_strength,
            image_key=picture.key if picture is not None else None,
        )
        .validate()
        .with_seed(args.seed)
    )
    if args.audio is not None and not args.audio.exists():
        raise UserError(f"Audio file {args.audio} does not exist.")
    # Checked first: a bad value is answered at once, before torch and the models load.
    from tqdm import tqdm

    from engine.render import accel
    from engine.render.clip import render_video
    from engine.render.controls import components_for
    from engine.render.models import load_components

    config = _engine_config(config, model=args.model, device=args.device)
    out = args.out or Path(f"animabot-seed{params.seed}.mp4")
    print(f"seed {params.seed}: {params.summary()}", file=sys.stderr)
    if picture is not None and picture.note:
        print(picture.note, file=sys.stderr)
    started = time.perf_counter()
    components = load_components(config.engine)
    accel.prepare(components)  # CUDA layouts only; the compiled step is for long-running workers
    components = components_for(components, params.control, config.engine)  # depth/pose: their models
    with (
        tqdm(total=params.frames, desc="frames", unit="frame", position=0) as frames_bar,
        tqdm(total=params.steps, desc="steps", unit="step", position=1, leave=False) as steps_bar,
    ):

        def on_step(step: int, total: int) -> None:
            steps_bar.total = total
            steps_bar.n = step
            steps_bar.refresh()

        def on_frame(index: int, frame) -> None:
            frames_bar.update(1)
            steps_bar.reset()

        result = render_video(
            components, params, out, on_frame=on_frame, on_step=on_step,
            picture=picture.pixels if picture is not None else None,
        )  # fmt: skip
    if args.audio is not None:
        from engine.video.edit import mux_audio

        mux_audio(result.path, args.audio, result.path)
    total = time.perf_counter() - started
    print(
        f"{result.path}  seed {result.seed}  {result.frames} frames in {result.seconds:.1f} s "
        f"({result.seconds_per_frame:.2f} s/frame; {total:.1f} s with model loading and encoding)"
    )
    return 0


async def _serve_worker(config: Config, device: str | None) -> None:
    from engine.queue.store import JobStore
    from engine.queue.worker import Runtime

    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store, device=device)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        print(f"worker {runtime.worker} serving {config.db_path}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runtime.stop()
        await store.close()


def cmd_models_download(args, config: Config) -> int:
    from engine.render.hub import download_models

    config = _engine_config(config, model=args.model, controlnet=args.controlnet)
    for path in download_models(config.engine, to=args.to):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        if args.command == "render":
            return cmd_render(args, config)
        if args.command == "worker":
            asyncio.run(_serve_worker(config, args.device))
            return 0
        if args.command == "models":
            return cmd_models_download(args, config)
        from bot.runner import run

        return run(config, with_runtime=not args.no_engine)
    except UserError as err:
        print(f"animabot: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

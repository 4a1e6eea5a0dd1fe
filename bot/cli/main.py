"""The ``animabot`` command: ``run`` (bot + engine), ``render`` (no Discord), ``worker``, ``models``.

It lives on the bot side because ``run`` needs both halves; ``render``, ``worker`` and ``models``
only import the engine, and torch is imported only by the commands that render.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from bot.cli import render as render_cli
from engine.config import Config, load_config
from engine.errors import UserError
from engine.request.params import parse_size

log = logging.getLogger("animabot")

# transformers warns at import about optional image processors the engine never uses.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _render_args(sub) -> None:
    p = sub.add_parser("render", help="render a clip locally, without Discord")
    p.add_argument("prompt", nargs="?", help='text, or keyframes like "0: a cat | 24: a tiger"')
    p.add_argument("-o", "--out", type=Path, default=None, help="output file (default: animabot-seed<SEED>.mp4)")
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
    p.add_argument(
        "--model", help="a configured model name, else a hub id, local folder/.safetensors or built-in model"
    )
    p.add_argument(
        "--lora", action="append", default=[], metavar="NAME[:WEIGHT]", help="a configured LoRA (repeatable)"
    )
    p.add_argument("--audio", type=Path, help="mux this audio file into the result")
    p.add_argument("--device", help="auto, cuda, cuda:N or cpu (overrides the config)")
    # -- starting from a picture, and the control type (issue 11)
    p.add_argument("--image", type=Path, help="start from this picture: it is frame 0 (fitted to --size)")
    p.add_argument("--image-strength", type=float, help="0 keeps the picture as frame 0; up to 1 re-draws it")
    p.add_argument("--control", help="what holds frames together: canny (edges), depth or pose")
    p.add_argument("--canny-low", type=int, help="the Canny edge thresholds, 0 <= low < high <= 1000")
    p.add_argument("--canny-high", type=int)
    p.add_argument(
        "--color-coherence", action=argparse.BooleanOptionalAction, help="hold each frame's colours to frame 0's"
    )
    render_cli.add_clip_args(p)  # --loop --smooth --format --from


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
    render_cli.add_inspect_commands(sub)  # info, metrics
    worker = sub.add_parser("worker", help="run the GPU engine alone, serving the shared job store")
    worker.add_argument("--device", help="e.g. cuda:1 (one worker per GPU)")
    models = sub.add_parser("models", help="manage model weights")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    download = models_sub.add_parser("download", help="fetch the configured weights (for offline GPU hosts)")
    download.add_argument("--to", type=Path, default=None, help="save as local folders here instead of the HF cache")
    download.add_argument("--model", help="override [engine] model")
    download.add_argument("--controlnet", help="override [engine] controlnet")
    models_sub.add_parser("list", help="the configured models and LoRAs, and whether their weights are here")
    # `--config` may also come after the sub-command, as the README shows.
    for p in (run, sub.choices["render"], worker, download, models_sub.choices["list"]):
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _engine_config(config: Config, **overrides) -> Config:
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine, **given))


def _picture(args):
    """The fitted picture of ``--image`` (None without it), sized by ``--size`` or by its aspect."""
    if args.image is None:
        return None
    from engine.request.picture import prepare_picture, read_picture_file

    return prepare_picture(read_picture_file(args.image), parse_size(args.size) if args.size else None)


def _catalog_for(config: Config, model: str | None):
    """The catalog and model name ``--model`` picks (None: the default): a configured name, else a
    hub id, a path or a built-in model's name as a one-off entry."""
    if model is None:
        return config.catalog, None
    from engine.render.weights.builtin import NAMES  # torch-free (the bot imports engine.render in functions)

    return config.catalog.for_command_line(model, NAMES)


def cmd_render(args, config: Config) -> int:
    picture = _picture(args)
    size = parse_size(args.size) if args.size else (None, None)
    config = render_cli.apply_recipe(args, config)  # --from VIDEO: its recipe becomes the defaults
    catalog, model = _catalog_for(config, args.model)
    loras = catalog.resolve_loras(",".join(args.lora)) if args.lora else None
    if picture is not None and not args.size:
        size = picture.pixels.shape[1], picture.pixels.shape[0]
    params = config.defaults(
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
        model=model,
        loras=loras,
        control=args.control,
        canny_low=args.canny_low,
        canny_high=args.canny_high,
        color_coherence=args.color_coherence,
        image_strength=args.image_strength,
        image_key=picture.key if picture is not None else None,
        **render_cli.clip_overrides(args),
    ).validate()
    params = params.with_seed(params.seed)  # the given (or recipe's) seed, else a random one
    if args.audio is not None and not args.audio.exists():
        raise UserError(f"Audio file {args.audio} does not exist.")
    if args.audio is not None and params.format != "mp4":
        raise UserError(f"A {params.format.upper()} has no sound; render an MP4 to add --audio.")
    # Checked first: a bad value is answered at once, before torch and the models load.
    config = _engine_config(config, device=args.device)
    return render_cli.run_render(args, config, params, catalog=catalog, picture=picture)


async def _serve_worker(config: Config, device: str | None) -> None:
    from engine.runtime.worker import Runtime
    from engine.store.store import open_store

    store = await open_store(config)
    runtime = Runtime(config, store, device=device)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        print(f"worker {runtime.worker} serving the {store.dialect} job store", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runtime.stop()
        await store.close()


def cmd_models_download(args, config: Config) -> int:
    from engine.render.weights.inventory import download_models

    config = _engine_config(config, model=args.model, controlnet=args.controlnet)
    for path in download_models(config.engine, to=args.to, catalog=config.catalog, safety_model=config.safety.model):
        print(path)
    return 0


def cmd_models_list(config: Config) -> int:
    from engine.render.weights.inventory import describe_catalog

    for line in describe_catalog(config.catalog, config.engine):
        print(line)
    return 0


def check_weights(config: Config) -> None:
    """At start: every configured single-file checkpoint and LoRA is a readable file of its kind (``UserError``)."""
    from engine.render.weights.weights_check import check_catalog, expected_width

    for line in check_catalog(config.catalog, expected_width(config.engine.model)):
        log.info("checked %s", line)


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
        if args.command in ("info", "metrics"):
            return render_cli.cmd_inspect(args)
        if args.command == "worker":
            check_weights(config)
            asyncio.run(_serve_worker(config, args.device))
            return 0
        if args.command == "models":
            if args.models_command == "list":
                return cmd_models_list(config)
            return cmd_models_download(args, config)
        check_weights(config)
        from bot.cli.run import run

        return run(config, with_runtime=not args.no_engine)
    except UserError as err:
        print(f"animabot: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

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
from bot.cli.recipe_file import apply_recipe
from bot.cli.render import builtin_default as _default
from engine.config import Config, load_config
from engine.errors import UserError
from engine.request.params import parse_size
from engine.request.recipe import engine_version
from engine.request.text import printable

log = logging.getLogger("animabot")

# transformers warns at import about optional image processors the engine never uses.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# One-off commands print only what they are for: log lines below WARNING appear with -v alone.
ONE_OFF_COMMANDS = ("render", "info", "metrics")
RENDER_EPILOG = "Defaults are the built-in ones; a config's [render] section replaces them."


def _render_args(sub) -> None:
    p = sub.add_parser("render", help="render a clip locally, without Discord", epilog=RENDER_EPILOG)
    p.add_argument(
        "prompt", nargs="?", help='text, or keyframes like "0: a cat | 24: a tiger" (every part starts with N:)'
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="output file (default: animabot-seed<SEED>.mp4)")
    p.add_argument("--negative", default=None, help="negative prompt (default: none)")
    p.add_argument("--frames", type=int, help=f"frames to render {_default('frames')}")
    p.add_argument("--fps", type=int, help=f"frames per second {_default('fps')}")
    p.add_argument("--seed", type=int, help=f"the clip's seed {_default('seed')}")
    p.add_argument("--steps", type=int, help=f"denoising steps per frame {_default('steps')}")
    p.add_argument("--guidance", type=float, help=f"how closely to follow the prompt {_default('guidance')}")
    p.add_argument("--strength", type=float, help=f"img2img from the previous frame, 0 = off {_default('strength')}")
    p.add_argument("--control-scale", type=float, help=f"how strongly frames hold together {_default('control_scale')}")
    p.add_argument(
        "--motion",
        help="none, zoom-in, zoom-out, pan-left, pan-right, pan-up, pan-down, rotate-cw, rotate-ccw "
        + _default("motion"),
    )
    p.add_argument("--motion-amount", type=float, help=f"motion per frame {_default('motion_amount')}")
    p.add_argument("--scheduler", help=f"dpm++, pndm, euler or unipc {_default('scheduler')}")
    p.add_argument("--size", help=f"WIDTHxHEIGHT, multiples of 8 {_default('size')}")
    p.add_argument(
        "--model",
        help="a configured model name, else a hub id, local folder/.safetensors or built-in model "
        "(default: the config's [engine] model)",
    )
    p.add_argument(
        "--lora", action="append", default=[], metavar="NAME[:WEIGHT]", help="a configured LoRA (repeatable)"
    )
    p.add_argument("--audio", type=Path, help="mux this audio file into the result")
    p.add_argument("--device", help="auto, cuda, cuda:N or cpu (overrides the config)")
    p.add_argument(
        "--safety", choices=("off", "check"), default="off",
        help="check: the [safety] checker looks at the start picture and frames; a flag stops the render (exit 2)",
    )  # fmt: skip
    # -- starting from a picture, and the control type (issue 11)
    p.add_argument("--image", type=Path, help="start from this picture: it is frame 0 (fitted to --size)")
    p.add_argument(
        "--image-strength",
        type=float,
        help=f"0 keeps the picture as frame 0; up to 1 re-draws it {_default('image_strength')}",
    )
    p.add_argument("--control", help=f"what holds frames together: canny (edges), depth or pose {_default('control')}")
    p.add_argument(
        "--canny-low", type=int, help=f"the Canny edge thresholds, 0 <= low < high <= 1000 {_default('canny_low')}"
    )
    p.add_argument("--canny-high", type=int, help=_default("canny_high"))
    p.add_argument(
        "--color-coherence",
        action=argparse.BooleanOptionalAction,
        help=f"hold each frame's colours to frame 0's {_default('color_coherence')}",
    )
    render_cli.add_clip_args(p)  # --loop --smooth --format --from


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animabot", description="Text to short AI video, on Discord or locally.")
    parser.add_argument("--version", action="version", version=f"animabot {engine_version()}")
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
    for p in (run, worker):  # each process its own port: workers on one host share one config file
        p.add_argument(
            "--metrics-listen", metavar="HOST:PORT", help="serve /metrics and /healthz (over [metrics] listen)"
        )
    models = sub.add_parser("models", help="manage model weights")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    download = models_sub.add_parser("download", help="fetch the configured weights (for offline GPU hosts)")
    download.add_argument("--to", type=Path, default=None, help="save as local folders here instead of the HF cache")
    download.add_argument("--model", help="override [engine] model")
    download.add_argument("--controlnet", help="override [engine] controlnet")
    models_sub.add_parser("list", help="the configured models and LoRAs, and whether their weights are here")
    check = sub.add_parser("check", help="check this host before going live: one line per item, exit 0 if all is well")
    check.add_argument("--no-engine", action="store_true", help="a bot-only host: skip the weights and the GPU")
    # `--config` may also come after the sub-command, as the README shows.
    for p in (run, sub.choices["render"], worker, download, models_sub.choices["list"], check):
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    # `-v` too, before or after the sub-command (SUPPRESS: not given there keeps the top-level value).
    for p in (run, sub.choices["render"], sub.choices["info"], sub.choices["metrics"], worker, download,
              models_sub.choices["list"], check):  # fmt: skip
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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
    render_cli.check_output(args)  # -o first: a place the file cannot go is answered before anything loads
    picture = _picture(args)
    size = parse_size(args.size) if args.size else (None, None)
    config, from_picture = apply_recipe(args, config)  # --from VIDEO: its recipe becomes the defaults
    picture = picture if picture is not None else from_picture  # and the picture it began from
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


def serve_metrics(config: Config, listen: str | None) -> None:
    """``/metrics`` and ``/healthz`` for this process when ``--metrics-listen`` or ``[metrics] listen``
    names an address; a port in use is a ``UserError`` (one line, exit 2) before anything starts."""
    if listen or config.metrics.listen:
        from engine.ops.serve import serve_metrics as serve

        serve(listen or config.metrics.listen)


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


def _default_config() -> Path | None:
    """The file ``load_config`` reads without ``--config``."""
    return Path("config.toml") if Path("config.toml").exists() else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.command in ONE_OFF_COMMANDS and not args.verbose
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if quiet else "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        if args.command == "render":
            return cmd_render(args, config)
        if args.command in ("info", "metrics"):
            return render_cli.cmd_inspect(args)
        if args.command in ("run", "worker"):
            serve_metrics(config, args.metrics_listen)
        if args.command == "worker":
            check_weights(config)
            asyncio.run(_serve_worker(config, args.device))
            return 0
        if args.command == "check":
            from bot.cli.check import run_check

            return run_check(config, args.config or _default_config(), with_engine=not args.no_engine)
        if args.command == "models":
            if args.models_command == "list":
                return cmd_models_list(config)
            return cmd_models_download(args, config)
        check_weights(config)
        from bot.cli.run import run

        return run(config, with_runtime=not args.no_engine)
    except UserError as err:
        if args.verbose:
            log.exception("the traceback of the error below")
        # One line (a config's mistakes: one line each); text from a file or a member, made printable.
        print(f"animabot: {printable(str(err), newlines=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

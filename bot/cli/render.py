"""The clip side of ``animabot render`` and the commands that read videos: ``info`` and ``metrics``.

``bot.cli.main`` builds the parser and the parameters; this module adds the clip flags (``--loop``,
``--smooth``, ``--format``, ``--from``), decides the output format, and runs the render
(``engine.runtime.render_job.render_job``: the worker's render path, for one job alone) so that it
reads cleanly in a terminal:

- one header line (``rendering "PROMPT": seed 42, 16 frames @ 8 fps, …``), on stderr;
- one frames bar and one steps bar (tqdm, on stderr); log lines go through tqdm's
  ``logging_redirect_tqdm`` so they never break a bar;
- diffusers', transformers' and huggingface_hub's own loading bars and warnings hidden unless ``-v``;
- one summary line at the end, on stdout (the path, the seed, the timing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from engine.config import Config
from engine.errors import UserError
from engine.request.catalog import Catalog
from engine.request.params import COHERENCES, FORMATS, LOOPS, SMOOTH_FACTORS, RenderParams
from engine.request.recipe import is_recipe, recipe_params, recipe_weights


# -- arguments ------------------------------------------------------------------------------------
def add_clip_args(p: argparse.ArgumentParser) -> None:
    """``--loop``, ``--smooth``, ``--format`` and ``--from`` on ``animabot render``."""
    p.add_argument("--loop", choices=LOOPS, help="none, pingpong (forward then back) or seamless (ends on the start)")
    p.add_argument("--smooth", type=int, choices=SMOOTH_FACTORS, help="1, 2 or 4: optical-flow in-between frames")
    p.add_argument("--format", choices=FORMATS, help="mp4, gif or webp (default: the extension of -o, else mp4)")
    p.add_argument(
        "--coherence", choices=COHERENCES, help="off, cross-frame (frames attend to frame 0 and the last) or motion"
    )
    p.add_argument(
        "--from", dest="from_video", type=Path, metavar="VIDEO", help="render again from the recipe inside VIDEO"
    )


def add_inspect_commands(sub) -> None:
    """``animabot info VIDEO`` and ``animabot metrics VIDEO``."""
    info = sub.add_parser("info", help="print the recipe inside an animabot video")
    info.add_argument("video", type=Path)
    metrics = sub.add_parser("metrics", help="print a video's temporal metrics (flicker, warp error) as JSON")
    metrics.add_argument("video", type=Path)


# -- parameters -----------------------------------------------------------------------------------
def apply_recipe(args: argparse.Namespace, config: Config) -> Config:
    """With ``--from VIDEO``: the video's recipe becomes the defaults (its prompt, seed, model…).

    Flags given on the command line still replace them. Without ``--from`` nothing changes, except
    that a missing prompt is refused.
    """
    if args.from_video is None:
        if not args.prompt:
            raise UserError("Give a prompt, or --from VIDEO to render a video's recipe again.")
        return config
    from engine.video.read import read_recipe

    recipe = read_recipe(args.from_video)
    if not is_recipe(recipe):
        raise UserError(
            f"{args.from_video} carries no animabot recipe; only videos animabot rendered can be re-rendered."
        )
    params = recipe_params(recipe)
    if params.image_key is not None and args.image is None:
        raise UserError(
            f"{args.from_video} started from a picture, which its recipe does not carry; give it with --image."
        )
    if not args.prompt:
        args.prompt = params.prompt
    if args.model is None:
        args.model = recipe_model(recipe, config.catalog)
    return dataclasses.replace(config, render=params)


def recipe_model(recipe: dict, catalog: Catalog) -> str:
    """The ``--model`` that renders ``recipe`` again here: its model's catalog name when this host has
    it, else its hub id. A name the host lacks with no hub id stays, and ``--model``'s own check
    answers it with the one sentence naming the models there are."""
    weights = recipe_weights(recipe)
    if weights.model in catalog.models or weights.model_hub is None:
        return weights.model
    return weights.model_hub


def output_format(args: argparse.Namespace) -> str | None:
    """The format to write: ``--format``, else the extension of ``-o`` (a contradiction is refused)."""
    from engine.video.formats import check_format_matches

    if args.out is None:
        return args.format
    return check_format_matches(args.out, args.format).name


def clip_overrides(args: argparse.Namespace) -> dict:
    """The clip options as ``Config.defaults`` keywords (``None``: keep the default)."""
    return {"loop": args.loop, "smooth": args.smooth, "format": output_format(args), "coherence": args.coherence}


def header_line(params: RenderParams) -> str:
    """``rendering "a cat": seed 42, 16 frames @ 8 fps, 512x512, …``: each word once."""
    return f"rendering {json.dumps(params.prompt, ensure_ascii=False)}: {params.summary()}"


# -- the render -----------------------------------------------------------------------------------
def run_render(args: argparse.Namespace, config: Config, params: RenderParams, *, catalog, picture=None) -> int:
    """Render with two bars (``render_job``: weights, LoRAs, control, chain, clip), mux ``--audio``,
    print one summary line.

    ``catalog``: the configured models and LoRAs (``engine.request.catalog``); ``picture``: the fitted
    ``--image`` (``engine.request.picture``) or None."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from engine.render.library_logs import quiet_libraries

    quiet_libraries(args.verbose)
    from engine.render import accel
    from engine.render.weights.model_cache import ModelCache
    from engine.runtime.render_job import render_job

    out = args.out or Path(f"animabot-seed{params.seed}.{params.format}")
    print(header_line(params), file=sys.stderr, flush=True)
    if picture is not None and picture.note:
        print(picture.note, file=sys.stderr)
    started = time.perf_counter()

    def prepare(loaded) -> None:  # CUDA layouts only; the compiled step is for long-running workers
        accel.prepare(loaded.components)

    with (
        logging_redirect_tqdm(),
        tqdm(total=params.frames, desc="frames", unit="frame", position=0, file=sys.stderr) as frames_bar,
        tqdm(total=params.steps, desc="steps", unit="step", position=1, leave=False, file=sys.stderr) as steps_bar,
    ):

        def on_step(step: int, total: int) -> None:
            steps_bar.total = total
            steps_bar.n = step
            steps_bar.refresh()

        def on_frame(index: int, frame) -> None:
            frames_bar.update(1)
            steps_bar.reset()

        models = ModelCache(catalog, config.engine, max_loaded=1, on_load=prepare)
        result = render_job(
            models, catalog, config.engine, params, out, on_frame=on_frame, on_step=on_step,
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


# -- info and metrics -----------------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    """``info``: the recipe as indented JSON; ``metrics``: the measured metrics as JSON."""
    if args.command == "metrics":
        from engine.video.metrics import measure_video

        print(json.dumps(measure_video(args.video), indent=2))
        return 0
    from engine.video.read import read_recipe

    recipe = read_recipe(args.video)
    if not is_recipe(recipe):
        raise UserError(f"{args.video} carries no animabot recipe.")
    print(json.dumps(recipe, indent=2, ensure_ascii=False))
    return 0

"""The clip side of ``animabot render`` and the commands that read videos: ``info`` and ``metrics``.

``bot.cli.main`` builds the parser and the parameters; this module adds the clip flags (``--loop``,
``--smooth``, ``--format``, ``--from``), decides the output format, and runs the render so that it
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
import logging
import os
import sys
import time
from pathlib import Path

from engine.config import Config
from engine.errors import UserError
from engine.request.params import FORMATS, LOOPS, SMOOTH_FACTORS, RenderParams
from engine.request.recipe import build_recipe, is_recipe, model_ids, recipe_params

LIBRARY_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "accelerate")


# -- arguments ------------------------------------------------------------------------------------
def add_clip_args(p: argparse.ArgumentParser) -> None:
    """``--loop``, ``--smooth``, ``--format`` and ``--from`` on ``animabot render``."""
    p.add_argument("--loop", choices=LOOPS, help="none, pingpong (forward then back) or seamless (ends on the start)")
    p.add_argument("--smooth", type=int, choices=SMOOTH_FACTORS, help="1, 2 or 4: optical-flow in-between frames")
    p.add_argument("--format", choices=FORMATS, help="mp4, gif or webp (default: the extension of -o, else mp4)")
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
    if not args.prompt:
        args.prompt = params.prompt
    if args.model is None:
        args.model = recipe.get("model")
    return dataclasses.replace(config, render=params)


def output_format(args: argparse.Namespace) -> str | None:
    """The format to write: ``--format``, else the extension of ``-o`` (a contradiction is refused)."""
    from engine.video.formats import check_format_matches

    if args.out is None:
        return args.format
    return check_format_matches(args.out, args.format).name


def clip_overrides(args: argparse.Namespace) -> dict:
    """The clip options as ``Config.defaults`` keywords (``None``: keep the default)."""
    return {"loop": args.loop, "smooth": args.smooth, "format": output_format(args)}


def header_line(params: RenderParams) -> str:
    """``rendering "a cat": seed 42, 16 frames @ 8 fps, 512x512, …``: each word once."""
    return f"rendering {json.dumps(params.prompt, ensure_ascii=False)}: {params.summary()}"


# -- the render -----------------------------------------------------------------------------------
def quiet_libraries(verbose: bool) -> None:
    """Hide the libraries' own progress bars and warnings unless ``verbose``."""
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


def run_render(args: argparse.Namespace, config: Config, params: RenderParams, *, catalog, picture=None) -> int:
    """Load the model (and its LoRAs, control), render with two bars, mux ``--audio``, print one summary line.

    ``catalog``: the configured models and LoRAs (``engine.request.catalog``); ``picture``: the fitted
    ``--image`` (``engine.request.picture``) or None."""
    import dataclasses

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    quiet_libraries(args.verbose)
    from engine.render import accel
    from engine.render.clip import render_video
    from engine.render.weights.controls import components_for
    from engine.render.weights.model_cache import ModelCache
    from engine.request.catalog import DEFAULT_MODEL

    out = args.out or Path(f"animabot-seed{params.seed}.{params.format}")
    print(header_line(params), file=sys.stderr, flush=True)
    if picture is not None and picture.note:
        print(picture.note, file=sys.stderr)
    started = time.perf_counter()
    engine = config.engine
    if params.model != DEFAULT_MODEL:  # a configured name, a hub id or a folder: the ids it loads
        entry = catalog.model(params.model)
        engine = dataclasses.replace(engine, model=entry.model, controlnet=entry.controlnet or engine.controlnet)
    model, controlnet = model_ids(engine)

    def recipe(final: RenderParams) -> dict:  # the prompt as typed: trigger words are added at render time
        return build_recipe(dataclasses.replace(final, prompt=params.prompt), model=model, controlnet=controlnet)

    with (
        logging_redirect_tqdm(),
        tqdm(total=params.frames, desc="frames", unit="frame", position=0, file=sys.stderr) as frames_bar,
        tqdm(total=params.steps, desc="steps", unit="step", position=1, leave=False, file=sys.stderr) as steps_bar,
    ):
        loaded = ModelCache(catalog, config.engine, max_loaded=1).get(params.model)
        loaded.use_loras(catalog, params.loras)
        accel.prepare(loaded.components)  # CUDA layouts only; the compiled step is for long-running workers
        components = components_for(loaded.components, params.control, engine)  # depth/pose: their models
        prompted = dataclasses.replace(params, prompt=catalog.prompt_with_triggers(params.prompt, params.loras))

        def on_step(step: int, total: int) -> None:
            steps_bar.total = total
            steps_bar.n = step
            steps_bar.refresh()

        def on_frame(index: int, frame) -> None:
            frames_bar.update(1)
            steps_bar.reset()

        result = render_video(
            components, prompted, out, on_frame=on_frame, on_step=on_step, recipe=recipe,
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

"""The clip side of ``animabot render`` and the commands that read videos: ``info`` and ``metrics``.

``bot.cli.main`` builds the parser and the parameters; this module adds the clip flags (``--loop``,
``--smooth``, ``--format``, ``--from``), checks ``-o`` before anything loads, decides the output
format, and runs the render (``engine.runtime.render_job.render_job``: the worker's render path,
for one job alone) so that it reads cleanly in a terminal:

- one header line (``rendering "PROMPT": seed 42, 16 frames @ 8 fps, …``), on stderr;
- a frames bar and a steps bar in a terminal, plain ``frames: N/M`` lines elsewhere
  (:mod:`bot.cli.progress`);
- diffusers', transformers' and huggingface_hub's own loading bars and warnings hidden, and log
  lines below WARNING, unless ``-v``;
- one summary line at the end, on stdout (the path, the seed, the file's frames, the timing; with
  ``--safety check``, how many frames the safety checker looked at and flagged).

What came from a member or a file (the prompt, model and LoRA names, a recipe) is printed through
:func:`engine.request.text.printable`. Reading a video's recipe: :mod:`bot.cli.recipe_file`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bot.cli.progress import RenderProgress
from bot.cli.recipe_file import existing_file, read_file_recipe
from engine.config import Config
from engine.errors import UserError
from engine.request.params import COHERENCES, FORMATS, LOOPS, SMOOTH_FACTORS, RenderParams
from engine.request.text import printable


# -- arguments ------------------------------------------------------------------------------------
def builtin_default(name: str) -> str:
    """``(default: 16)``: the built-in value of a render setting, for ``render --help`` (a config's
    ``[render]`` section may replace it: the help's epilog says so)."""
    value = getattr(RenderParams(prompt="-"), name)
    return f"(default: {'random' if value is None else value})"


def add_clip_args(p: argparse.ArgumentParser) -> None:
    """``--loop``, ``--smooth``, ``--format`` and ``--from`` on ``animabot render``."""
    p.add_argument(
        "--loop",
        choices=LOOPS,
        help=f"none, pingpong (forward then back) or seamless (ends on the start) {builtin_default('loop')}",
    )
    p.add_argument(
        "--smooth",
        type=int,
        choices=SMOOTH_FACTORS,
        help=f"1, 2 or 4: optical-flow in-between frames {builtin_default('smooth')}",
    )
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
def check_output(args: argparse.Namespace) -> None:
    """``-o`` before anything is read or loaded: not a folder, in a folder that exists and this
    process can write in, and with an extension that agrees with ``--format`` (or, without
    ``--format``, one that names a format: the extension picks it). Without ``-o`` the file goes to
    the current folder, which must be writable too. Each mistake is one ``UserError`` line."""
    out = args.out
    if out is not None and out.is_dir():
        raise UserError(f"{out} is a folder; give -o a file name, such as {out / 'clip.mp4'}.")
    folder = out.parent if out is not None else Path.cwd()
    if not folder.is_dir():
        raise UserError(f"The folder {folder} does not exist; create it, or give -o a file in a folder that exists.")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(
            f"animabot cannot write in {folder} ({err.strerror}); give -o a file in a folder you can write to."
        ) from None
    output_format(args)  # a contradicting or unknown extension


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
    print one summary line. With ``--safety check`` a flagged picture or frame stops the render with
    one line (``UserError``: exit 2) and no file; else the summary line says what was checked.

    ``catalog``: the configured models and LoRAs (``engine.request.catalog``); ``picture``: the fitted
    ``--image`` (``engine.request.picture``) or None."""
    catalog.check(params.model, params.loras)  # a recipe's LoRAs too, before anything loads
    checks = safety_checks(args, config, params)  # --safety check without a checker: before anything loads
    from engine.render.library_logs import quiet_libraries

    quiet_libraries(args.verbose)
    from engine.render import accel
    from engine.render.weights.model_cache import ModelCache
    from engine.runtime.frame_checks import Unsafe
    from engine.runtime.render_job import render_job

    out = args.out or Path(f"animabot-seed{params.seed}.{params.format}")
    print(printable(header_line(params)), file=sys.stderr, flush=True)
    if picture is not None and picture.note:
        print(picture.note, file=sys.stderr)
    started = time.perf_counter()

    def prepare(loaded) -> None:  # CUDA layouts only; the compiled step is for long-running workers
        accel.prepare(loaded.components)

    with RenderProgress(params.frames, params.steps) as progress:
        models = ModelCache(catalog, config.engine, max_loaded=1, on_load=prepare)
        try:
            result = render_job(
                models, catalog, config.engine, params, out, on_frame=progress.on_frame, on_step=progress.on_step,
                picture=picture.pixels if picture is not None else None, checks=checks,
            )  # fmt: skip
        except Unsafe as err:
            raise UserError(flagged_line(err.what, checks)) from None
    if args.audio is not None:
        from engine.video.edit import mux_audio

        mux_audio(result.path, args.audio, result.path)
    line = summary_line(result, params, time.perf_counter() - started)
    if checks is not None:
        line += f"; safety: {checks.summary()}"
    print(printable(line))
    return 0


def safety_checks(args: argparse.Namespace, config: Config, params: RenderParams):
    """``--safety check``: the worker's checks for this render alone (``AloneChecks``), with the
    config's ``[safety]`` model, threshold and ``every_k_frames``; None for ``--safety off``."""
    if args.safety != "check":
        return None
    if not config.safety.checks_pictures:
        raise UserError(
            "--safety check needs a safety checker; set [safety] model in the config "
            '(such as "CompVis/stable-diffusion-safety-checker") and enabled = true.'
        )
    from engine.runtime.frame_checks import AloneChecks, FrameChecks

    checks = FrameChecks(config.safety, device=config.engine.device, dtype=config.engine.dtype)
    return AloneChecks(checks, params.frames)


def flagged_line(what: str, checks) -> str:
    """The one line of a render the safety checker stopped (exit 2; nothing was written)."""
    return (
        f"The safety checker flagged {what} (threshold {checks.checks.safety.threshold:g}; {checks.summary()}); "
        "the render was stopped and nothing was written; try another prompt or seed."
    )


def file_frames(rendered: int, params: RenderParams) -> int:
    """How many frames the file of ``rendered`` frames holds, after the loop and the smoothing."""
    from engine.video.interpolate import smoothed_count
    from engine.video.loops import pingpong_count

    shown = pingpong_count(rendered) if params.loop == "pingpong" else rendered
    return smoothed_count(shown, params.smooth)


def summary_line(result, params: RenderParams, total: float) -> str:
    """``clip.mp4  seed 42  16 frames in 9.1 s (…)``: the file's frames; the rendered ones when they differ."""
    frames = file_frames(result.frames, params)
    timing = f"{result.seconds:.1f} s ({result.seconds_per_frame:.2f} s/frame"
    rendered = f"in {timing}" if frames == result.frames else f"({result.frames} rendered in {timing}"
    return (
        f"{result.path}  seed {result.seed}  {frames} frames {rendered}; {total:.1f} s with model loading and encoding)"
    )


# -- info and metrics -----------------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    """``info``: the recipe as indented JSON; ``metrics``: the measured metrics as JSON.

    The recipe came from a file: its strings are printed without escape sequences or control
    characters (:func:`engine.request.text.printable`)."""
    if args.command == "metrics":
        from engine.video.metrics import measure_video

        print(json.dumps(measure_video(existing_file(args.video)), indent=2))
        return 0
    recipe = read_file_recipe(args.video)
    try:
        shown = json.dumps(_printable_values(recipe), indent=2, ensure_ascii=False)
    except RecursionError:  # a recipe nested almost as deep as the JSON parser goes
        raise UserError(
            f"The recipe in {args.video} is nested too deeply to show; it was not written by animabot."
        ) from None
    print(shown)
    return 0


def _printable_values(value):
    """``value`` (parsed JSON) with every string, keys too, made printable (the JSON stays valid)."""
    if isinstance(value, str):
        return printable(value, newlines=True)
    if isinstance(value, dict):
        return {printable(key): _printable_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable_values(item) for item in value]
    return value

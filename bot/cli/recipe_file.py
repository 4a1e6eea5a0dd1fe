"""The video files the command line reads: ``info VIDEO``, ``metrics VIDEO`` and ``render --from VIDEO``.

A video given on the command line may come from anyone, so everything about it is checked before
a model loads, and every mistake is one ``UserError`` line: a path that is missing or a folder, a
file that holds no recipe (or one too big or too deeply nested to be one: ``parse_recipe``), values
of the wrong type, and a model this host's config does not name. A recipe never makes this host
fetch a hub id or open a path it names: its model must be a configured (or built-in) one, or
``--model`` says what to use instead.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from engine.config import Config
from engine.errors import UserError
from engine.request.catalog import Catalog
from engine.request.params import RenderParams
from engine.request.recipe import is_recipe, recipe_params, recipe_weights
from engine.request.text import printable


def existing_file(path: Path) -> Path:
    """``path`` when it is a file; ``UserError`` when it is missing or a folder."""
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of a video file.")
    if not path.is_file():
        raise UserError(f"{path} does not exist; give the path of a video file.")
    return path


def read_file_recipe(path: Path) -> dict:
    """The animabot recipe inside the video at ``path``; ``UserError`` for any file that holds none."""
    from engine.video.read import read_recipe

    recipe = read_recipe(existing_file(path))
    if not is_recipe(recipe):
        raise UserError(f"{path} carries no animabot recipe.")
    return recipe


def file_params(path: Path, recipe: dict) -> RenderParams:
    """The validated parameters of the recipe read from ``path``.

    A crafted file can hold any JSON where a number or a list belongs; whatever the request schema
    does not answer with its own sentence is answered here, naming the file."""
    try:
        params = recipe_params(recipe)
    except UserError as err:
        raise UserError(f"The recipe in {path} is not valid: {err}") from None
    except (TypeError, ValueError, AttributeError, RecursionError):
        raise UserError(f"The recipe in {path} could not be read; it was not written by animabot.") from None
    return params


def apply_recipe(args: argparse.Namespace, config: Config):
    """With ``--from VIDEO``: the video's recipe becomes the defaults (its prompt, seed, model…), and
    a clip that began from a picture starts from that picture again (:func:`start_picture`).

    Returns ``(config, picture)``: the config with the recipe as its ``[render]`` defaults, and the
    fitted start picture or ``None``. Flags given on the command line still replace the recipe's
    values. Without ``--from`` nothing changes, except that a missing prompt is refused.
    """
    if args.from_video is None:
        if not args.prompt:
            raise UserError("Give a prompt, or --from VIDEO to render a video's recipe again.")
        return config, None
    recipe = read_file_recipe(args.from_video)
    params = file_params(args.from_video, recipe)
    if args.model is None:
        args.model = recipe_model(recipe, config.catalog, args.from_video)
    picture = None
    if params.image_key is not None and args.image is None:
        picture = start_picture(args.from_video, params)
    if not args.prompt:
        args.prompt = params.prompt
    return dataclasses.replace(config, render=params), picture


def recipe_model(recipe: dict, catalog: Catalog, video: Path | None = None) -> str:
    """The ``--model`` that renders ``recipe`` again here: its model's name when this host's config
    names it (or it is a built-in model); else ``UserError`` saying to configure it or give ``--model``.

    A recipe's hub id is never fetched on its own say: a file from anyone could name any repository."""
    from engine.render.weights.builtin import NAMES  # torch-free (the bot imports engine.render in functions)

    weights = recipe_weights(recipe)
    if weights.model in catalog.models or weights.model in NAMES:
        return weights.model
    where = video if video is not None else "The video"
    hub = f" (its hub id is {weights.model_hub}: --model {weights.model_hub} uses it)" if weights.model_hub else ""
    raise UserError(
        f"{where} was drawn by the model {printable(weights.model)!r}, which this host's config does not name; "
        f"add it under [models] or give --model{hub}."
    )


def start_picture(video: Path, params: RenderParams):
    """The picture a clip began from, as frame 0 of ``video`` holds it (fitted to the recipe's size).

    Frame 0 is the picture only when the clip kept it as it was (image strength 0); a re-drawn
    frame 0 is not the picture, and ``UserError`` says to give it with ``--image``."""
    if params.image_strength:
        raise UserError(
            f"{video} started from a picture that its frame 0 re-draws (image strength "
            f"{params.image_strength:g}), so the file does not hold it; give the picture with --image."
        )
    from engine.request.picture import encode_png, prepare_picture
    from engine.video.read import decode_frames

    try:
        frames = decode_frames(video)
    except UserError:
        frames = []
    if not frames:
        raise UserError(f"Frame 0 of {video} could not be decoded; give the picture it began from with --image.")
    return prepare_picture(encode_png(frames[0]), (params.width, params.height))

"""The recipe inside every video: what it takes to render it again, as a JSON object.

One function writes it (``engine.runtime.render_job``, for the worker and ``animabot render`` alike)
with :func:`build_recipe`; the video layer stores it in the file (``engine.video.embedded_recipe``
says where). :func:`recipe_params` turns a recipe read back from a file into :class:`RenderParams`
again, :func:`recipe_weights` says which weights drew it, and :func:`render_command` spells it as
one ``animabot render`` command line.

A recipe (version 2) looks like::

    {"animabot": "0.1.0", "recipe": 2, "job": 42,
     "params": {...RenderParams.to_dict()...},
     "model_hub": "stable-diffusion-v1-5/stable-diffusion-v1-5",
     "controlnet_hub": "lllyasviel/control_v11f1p_sd15_depth", "picture": false}

``params`` hold the render as the member asked for it: the prompt as typed (a LoRA's trigger words
are added at render time), the model by its catalog name (``params.model``), the LoRAs with their
weights, the control, the Canny thresholds, colour coherence, the scheduler. ``model_hub`` and
``controlnet_hub`` are the hub ids the host named the model and the control's ControlNet by, or
``null`` where it named a local path (a host's paths never leave it in a file). ``picture`` says the
clip began from a member's picture; neither the picture nor its key is in the file (a key would let
anyone who gets the file fetch the member's stored picture), so :func:`recipe_params` gives such a
recipe :data:`PICTURE_NOT_IN_FILE` as its ``image_key``, as it does the key an older file carries.

Version 1 (videos already shared) kept ``model``/``controlnet`` as the ids the host configured
(``[engine] model`` even for a job of another model); :func:`recipe_weights` reads both.

No torch here, and no config: the bot reads recipes too.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.request.catalog import DEFAULT_MODEL
from engine.request.params import RenderParams

RECIPE_VERSION = 2

# The image_key of params read from a recipe that began from a picture: a key no picture is kept
# under, so such params render nothing until the picture is given (the file's frame 0, --image).
PICTURE_NOT_IN_FILE = "0" * 64

# RenderParams field → the `animabot render` flag that sets it. Size, the LoRAs, colour coherence
# and the prompt are spelled apart (one flag for two fields, a repeated flag, a flag pair, a word).
CLI_FLAGS = {
    "negative_prompt": "--negative",
    "frames": "--frames",
    "fps": "--fps",
    "seed": "--seed",
    "steps": "--steps",
    "guidance": "--guidance",
    "strength": "--strength",
    "control_scale": "--control-scale",
    "motion": "--motion",
    "motion_amount": "--motion-amount",
    "scheduler": "--scheduler",
    "model": "--model",
    "control": "--control",
    "canny_low": "--canny-low",
    "canny_high": "--canny-high",
    "coherence": "--coherence",
    "loop": "--loop",
    "smooth": "--smooth",
    "format": "--format",
}

# owner/name, each part starting with a letter or digit (the hub's rule, less its length limits).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class RecipeWeights:
    """Which weights drew a recipe's clip: the model by its catalog name, and the hub ids known."""

    model: str  # the catalog name (``default``: the host's [engine] model)
    model_hub: str | None  # the model's hub id, when the host named it by one
    control: str  # canny, depth or pose
    controlnet_hub: str | None  # that control's ControlNet's hub id, when the host named it by one


def engine_version() -> str:
    """The installed animabot package's version (``"unknown"`` when it is not installed)."""
    try:
        return importlib.metadata.version("animabot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def hub_shaped(value: Any) -> bool:
    """Whether ``value`` reads as a hub id (``owner/name``), not as a file or folder path."""
    return (
        isinstance(value, str)
        and _HUB_ID.fullmatch(value) is not None
        and ".." not in value
        and not value.endswith(".safetensors")
    )


def hub_id(named: str | None) -> str | None:
    """``named`` when it is a hub id, ``None`` when it is a local path (a folder or file here) or empty."""
    if not hub_shaped(named) or Path(named).expanduser().exists():
        return None
    return named


def build_recipe(
    params: RenderParams, *, model: str | None, controlnet: str | None, job_id: int | None = None
) -> dict[str, Any]:
    """The recipe of a render of ``params`` (with a concrete seed).

    ``model`` and ``controlnet`` are what the host named the model and the control's ControlNet by
    (a hub id or a local path); only hub ids are recorded.
    """
    if params.seed is None:
        raise ValueError("a recipe needs a concrete seed")
    data = params.to_dict()
    picture = data.pop("image_key", None) is not None  # the key stays in the store (issue 20)
    return {
        "animabot": engine_version(),
        "recipe": RECIPE_VERSION,
        "job": job_id,
        "params": data,
        "model_hub": hub_id(model),
        "controlnet_hub": hub_id(controlnet),
        "picture": picture,  # a start picture (issue 11) is not in the file itself, nor its key
    }


def is_recipe(recipe: Mapping[str, Any] | None) -> bool:
    """Whether ``recipe`` is one of animabot's (a JSON object with ``params`` holding a prompt)."""
    return (
        isinstance(recipe, Mapping)
        and "animabot" in recipe
        and isinstance(recipe.get("params"), Mapping)
        and isinstance(recipe["params"].get("prompt"), str)
    )


def recipe_params(recipe: Mapping[str, Any] | None, **overrides) -> RenderParams:
    """The validated parameters of ``recipe``, with ``overrides`` (those not ``None``) replacing them.

    A recipe that began from a picture gives :data:`PICTURE_NOT_IN_FILE` as ``image_key``, whatever
    key the file names (files written before the key was left out carry one): a key read from a file
    never fetches a stored picture. ``UserError`` when it is no animabot recipe or its values are not
    valid any more.
    """
    if not is_recipe(recipe):
        raise UserError("This video carries no animabot recipe; only videos animabot rendered can be re-rendered.")
    data = recipe["params"]
    if isinstance(data, Mapping):  # a picture's key in a file fetches nothing (old files carried one)
        data = dict(data)
        if data.pop("image_key", None) is not None or recipe.get("picture"):
            data["image_key"] = PICTURE_NOT_IN_FILE
    params = RenderParams.parse(data)  # a file is untrusted: the request's schema, one sentence
    given = {name: value for name, value in overrides.items() if value is not None}
    return dataclasses.replace(params, **given).validate() if given else params


def recipe_weights(recipe: Mapping[str, Any]) -> RecipeWeights:
    """The weights ``recipe`` names (version 1 or 2), its hub ids checked to be hub ids (files are untrusted)."""
    params = recipe_params(recipe)
    if recipe.get("recipe") == 1:
        # v1 kept the configured ids: the [engine] model's even for a job of another model, so its
        # id is the model's only for the default model or a one-off `--model ORG/NAME`.
        named = recipe.get("model")
        model_hub = named if params.model in (DEFAULT_MODEL, named) else None
        controlnet_hub = recipe.get("controlnet") if params.control == "canny" else None  # v1 kept canny's
    else:
        model_hub, controlnet_hub = recipe.get("model_hub"), recipe.get("controlnet_hub")
    return RecipeWeights(
        model=params.model,
        model_hub=model_hub if hub_shaped(model_hub) else None,
        control=params.control,
        controlnet_hub=controlnet_hub if hub_shaped(controlnet_hub) else None,
    )


def render_command(recipe: Mapping[str, Any]) -> str | None:
    """One ``animabot render`` line that renders ``recipe`` again with every setting it holds.

    ``None`` for a clip that started from a picture: the recipe does not carry the picture, so no
    command line can render it again.
    """
    params = recipe_params(recipe)
    if params.image_key is not None:  # began from a picture (recipe_params says so)
        return None
    # A prompt that starts with '-' would read as a flag: it goes last, after '--'.
    dashed = params.prompt.startswith("-")
    words = ["animabot", "render", *([] if dashed else [params.prompt])]
    for name, flag in CLI_FLAGS.items():
        words += _option(flag, _word(getattr(params, name)))  # every flag: the host's defaults may differ
    words += ["--size", params.size]
    words += ["--color-coherence" if params.color_coherence else "--no-color-coherence"]
    for name, weight in params.loras:
        words += _option("--lora", f"{name}:{_word(weight)}")
    words += ["--", params.prompt] if dashed else []
    return shlex.join(words)


def _option(flag: str, value: str) -> list[str]:
    """``[flag, value]``, or ``[flag=value]`` for a value that would read as a flag of its own."""
    return [f"{flag}={value}"] if value.startswith("-") else [flag, value]


def _word(value: Any) -> str:
    """A value as the command line spells it: numbers short (7.5, not 7.500000) yet exact."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)

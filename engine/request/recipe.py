"""The recipe inside every video: what it takes to render it again, as a JSON object.

Both render paths (the runtime's encode and ``animabot render``) build it with :func:`build_recipe`
and hand it to the video layer, which stores it in the file (``engine.video.embedded_recipe`` says where).
:func:`recipe_params` turns a recipe read back from a file into :class:`RenderParams` again, and
:func:`render_command` spells it as one ``animabot render`` command line.

A recipe looks like::

    {"animabot": "0.1.0", "recipe": 1, "job": 42, "params": {...RenderParams.to_dict()...},
     "model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "model_revision": null,
     "controlnet": "lllyasviel/control_v11p_sd15_canny", "controlnet_revision": null, "picture": false}

No torch here: the bot reads recipes too.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UserError
from engine.request.params import RenderParams

if TYPE_CHECKING:
    from engine.config import EngineConfig

RECIPE_VERSION = 1
TEST_TINY = "test-tiny"  # engine.render.weights.hub.TEST_TINY (not imported: the bot reads this module)

# RenderParams field → the `animabot render` flag that sets it (size is one flag for two fields).
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
    "loop": "--loop",
    "smooth": "--smooth",
    "format": "--format",
}


def engine_version() -> str:
    """The installed animabot package's version (``"unknown"`` when it is not installed)."""
    try:
        return importlib.metadata.version("animabot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def model_ids(engine_config: EngineConfig) -> tuple[str, str]:
    """The (model, ControlNet) ids a render with ``engine_config`` loads: test-tiny brings its own ControlNet."""
    model, controlnet = engine_config.model, engine_config.controlnet
    if model == TEST_TINY and not Path(controlnet).expanduser().is_dir():
        controlnet = TEST_TINY
    return model, controlnet


def build_recipe(
    params: RenderParams,
    *,
    model: str,
    controlnet: str,
    job_id: int | None = None,
    revisions: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The recipe of a render of ``params`` (with a concrete seed) on ``model`` + ``controlnet``.

    ``revisions`` may name the commits the weights came from (``{"model": "...", "controlnet": ...}``).
    """
    if params.seed is None:
        raise ValueError("a recipe needs a concrete seed")
    data = params.to_dict()
    revisions = revisions or {}
    return {
        "animabot": engine_version(),
        "recipe": RECIPE_VERSION,
        "job": job_id,
        "params": data,
        "model": model,
        "model_revision": revisions.get("model"),
        "controlnet": controlnet,
        "controlnet_revision": revisions.get("controlnet"),
        "picture": bool(data.get("image_key")),  # a start picture (issue 11) is not in the file itself
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

    ``UserError`` when it is no animabot recipe or its values are not valid any more.
    """
    if not is_recipe(recipe):
        raise UserError("This video carries no animabot recipe; only videos animabot rendered can be re-rendered.")
    try:
        params = RenderParams.from_dict(dict(recipe["params"]))
    except TypeError as err:
        raise UserError(f"The video's recipe could not be read ({err}); it may come from another animabot.") from None
    given = {name: value for name, value in overrides.items() if value is not None}
    return dataclasses.replace(params, **given).validate()


def render_command(recipe: Mapping[str, Any]) -> str:
    """One ``animabot render`` line that renders ``recipe`` again (every setting it has a flag for)."""
    params = recipe_params(recipe)
    words = ["animabot", "render", params.prompt]
    for name, flag in CLI_FLAGS.items():
        value = getattr(params, name)
        if name == "negative_prompt" and not value:
            continue
        words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    words += ["--size", params.size, "--model", str(recipe.get("model"))]
    return shlex.join(words)

"""The Info button's text: a video's recipe in readable form, with a copyable ``animabot render`` line."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.delivery.results import result_file
from bot.text import limits
from bot.text.messages import quote
from engine.config import Config
from engine.errors import UserError
from engine.request.recipe import is_recipe, recipe_params, recipe_weights, render_command
from engine.store.jobs import Job
from engine.store.store import JobStore

INFO_PROMPT_LIMIT = 300  # the prompt is in the command line too; the quote only reminds
FROM_A_PICTURE = (
    "It started from a picture, which the recipe does not carry: `animabot render --from VIDEO` starts "
    "from the video's first frame when the picture was kept as it was (image strength 0); otherwise "
    "`animabot render --from VIDEO --image PICTURE` does, given that picture."
)


def info_text(recipe: Mapping[str, Any]) -> str:
    """The recipe as Discord Markdown (≤ 2000 characters); the command line is never clipped mid-way."""
    params = recipe_params(recipe)
    weights = recipe_weights(recipe)
    job = recipe.get("job")
    lines = [f"**Recipe of job {job}**" if job is not None else "**Recipe**", quote(params.prompt, INFO_PROMPT_LIMIT)]
    if params.negative_prompt:
        lines.append(f"Negative: {quote(params.negative_prompt, INFO_PROMPT_LIMIT)[2:]}")
    lines.append(f"-# {params.summary()}")
    model = f"Model `{weights.model}`" + (f" (`{weights.model_hub}`)" if weights.model_hub else "")
    controlnet = f" `{weights.controlnet_hub}`" if weights.controlnet_hub else ""
    lines.append(
        f"{model} · {weights.control} ControlNet{controlnet} · "
        f"start picture: {'yes' if recipe.get('picture') else 'no'} · animabot {recipe.get('animabot')}"
    )
    head = "\n".join(lines)
    command = render_command(recipe)
    block = f"Render it again:\n```\n{command}\n```" if command is not None else FROM_A_PICTURE
    if len(head) + 1 + len(block) > limits.CONTENT:
        block = "The command line is too long to show here; `animabot info VIDEO` prints the whole recipe."
    return limits.shorten(f"{head}\n{block}", limits.CONTENT)


async def job_recipe(config: Config, store: JobStore, job: Job) -> dict:
    """The recipe inside the job's video while it is kept (read through the store's blobs, whichever
    host rendered it), else the one its parameters give here."""
    if job.params is None:
        raise UserError(f"Job {job.id} only added audio; use Info on the video it used (job {job.parent_id}).")
    video = await result_file(store, job)
    if video is not None:
        from engine.video.read import read_recipe  # ffmpeg side; imported only when needed

        recipe = await asyncio.to_thread(read_recipe, video)
        if is_recipe(recipe):
            return recipe
    from engine.runtime.render_job import recipe_for  # torch-free; the one writer of recipes

    return recipe_for(config.catalog, config.engine, job.params, job_id=job.id)

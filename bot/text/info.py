"""The Info button's text: a video's recipe in readable form, with a copyable ``animabot render`` line."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.text import limits
from bot.text.messages import quote
from engine.config import Config
from engine.errors import UserError
from engine.request.recipe import build_recipe, is_recipe, model_ids, recipe_params, render_command
from engine.store.jobs import Job

INFO_PROMPT_LIMIT = 300  # the prompt is in the command line too; the quote only reminds


def info_text(recipe: Mapping[str, Any]) -> str:
    """The recipe as Discord Markdown (≤ 2000 characters); the command line is never clipped mid-way."""
    params = recipe_params(recipe)
    job = recipe.get("job")
    lines = [f"**Recipe of job {job}**" if job is not None else "**Recipe**", quote(params.prompt, INFO_PROMPT_LIMIT)]
    if params.negative_prompt:
        lines.append(f"Negative: {quote(params.negative_prompt, INFO_PROMPT_LIMIT)[2:]}")
    lines.append(f"-# {params.summary()}")
    lines.append(
        f"Model `{recipe.get('model')}` · ControlNet `{recipe.get('controlnet')}` · "
        f"start picture: {'yes' if recipe.get('picture') else 'no'} · animabot {recipe.get('animabot')}"
    )
    head = "\n".join(lines)
    command = render_command(recipe)
    block = f"Render it again:\n```\n{command}\n```"
    if len(head) + 1 + len(block) > limits.CONTENT:
        block = "The command line is too long to show here; `animabot info VIDEO` prints the whole recipe."
    return limits.shorten(f"{head}\n{block}", limits.CONTENT)


async def job_recipe(config: Config, job: Job) -> dict:
    """The recipe inside the job's video when this host has it, else the one its parameters give."""
    if job.params is None:
        raise UserError(f"Job {job.id} only added audio; use Info on the video it used (job {job.parent_id}).")
    if job.result_path and Path(job.result_path).exists():
        from engine.video.read import read_recipe  # ffmpeg side; imported only when needed

        recipe = await asyncio.to_thread(read_recipe, job.result_path)
        if is_recipe(recipe):
            return recipe
    model, controlnet = model_ids(config.engine)
    return build_recipe(job.params, model=model, controlnet=controlnet, job_id=job.id)

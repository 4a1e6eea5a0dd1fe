"""One job, from its parameters to its finished file: the one render path of the worker and ``animabot render``.

- :func:`use_weights` (GPU thread): the loaded model a job's params name, with exactly their LoRAs on;
- :class:`JobRender` (GPU thread): one job's frame chain on those weights with its control's
  ControlNet and annotator, its prompt with the LoRAs' trigger words, resumed from the frames saved
  so far; :meth:`JobRender.finish` (CPU thread) loops, smooths and writes its frames in its format,
  the recipe inside;
- :func:`next_frames` (GPU thread): the next frame of several jobs of one batch key, their
  denoising steps batched (``engine.render.chain.render_round``);
- :func:`render_job`: one job alone, start to file, as a numbered script (``animabot render``).

The worker's batcher builds a ``JobRender`` per job, renders their rounds together with
:func:`next_frames` and calls the same ``finish``; ``animabot render`` calls :func:`render_job`. So
the two can never draw, encode or describe a job differently: the recipe (:func:`recipe_for`) is
written from the params the job was rendered with and the weights the host named for them.

``engine.render`` (and so torch) is imported only inside the functions that run on the GPU thread.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import EngineConfig
from engine.errors import UserError
from engine.request.catalog import Catalog
from engine.request.params import RenderParams
from engine.request.recipe import build_recipe, hub_id


@dataclass(frozen=True)
class RenderResult:
    """A job rendered to its file: where, with which seed, how many frames in how many seconds."""

    path: Path
    seed: int
    frames: int
    seconds: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames, 1)


def named_weights(catalog: Catalog, engine_config: EngineConfig, params: RenderParams) -> tuple[str | None, str]:
    """What the host named the job's model and its control's ControlNet by (a hub id or a local path).

    The model is ``None`` when the catalog no longer has it (a recipe then names it by its name alone).
    """
    entry = catalog.models.get(params.model)
    controlnet, _ = engine_config.control_ids(params.control)
    if params.control == "canny" and entry is not None and entry.controlnet:  # the model's own ControlNet
        controlnet = entry.controlnet
    return (entry.model if entry is not None else None), controlnet


def recipe_for(
    catalog: Catalog, engine_config: EngineConfig, params: RenderParams, *, job_id: int | None = None
) -> dict[str, Any]:
    """The recipe of ``params`` rendered on this host: the params as asked, the hub ids of its weights."""
    model, controlnet = named_weights(catalog, engine_config, params)
    recipe = build_recipe(params, model=model, controlnet=controlnet, job_id=job_id)
    if params.coherence == "motion":  # which adapter moved it (a hub id; None for test-tiny or a folder)
        recipe["motion_adapter_hub"] = hub_id(engine_config.motion_adapter)
    return recipe


def use_weights(models, catalog: Catalog, params: RenderParams):
    """GPU thread: the loaded model ``params`` name (``engine.render.weights.model_cache``), with
    exactly their LoRAs active; ``UserError`` when it is not configured or cannot load."""
    loaded = models.get(params.model)
    loaded.use_loras(catalog, params.loras)
    return loaded


class JobRender:
    """GPU thread: one job's frame chain, drawn by ``loaded`` (from :func:`use_weights` for its params).

    ``work_dir``: where the job's frames are saved (``NNNNN.png``); the chain resumes from those
    found there, and a start picture that is frame 0 as it is is saved at once. ``picture``: the
    fitted picture of params with an ``image_key`` (``engine.request.picture``).
    """

    def __init__(
        self,
        loaded,
        catalog: Catalog,
        engine_config: EngineConfig,
        params: RenderParams,
        *,
        work_dir: Path | None = None,
        cancel: threading.Event | None = None,
        picture: np.ndarray | None = None,
    ) -> None:
        from engine.render.chain import FrameChain
        from engine.render.frames import load_frames, save_frame
        from engine.render.weights.controls import components_for

        # 1. check inputs
        self.params = params.validate()
        self.recipe = recipe_for(catalog, engine_config, self.params)  # no job id yet: finish adds it
        self.coherence_bytes = coherence_bytes(loaded, engine_config, params)
        _check_coherence(engine_config, params, self.coherence_bytes)
        # 2. the weights: the model with its LoRAs (loaded), and this control's ControlNet and annotator
        self.components = components_for(loaded.components, params.control, engine_config)
        self.predict = loaded.predict if params.control == "canny" else None  # compiled for canny's ControlNet
        self.vae = loaded.vae
        # 3. the chain, from the frames saved so far; the LoRAs' trigger words join the prompt here
        saved = load_frames(work_dir, params.frames) if work_dir is not None else []
        prompted = dataclasses.replace(params, prompt=catalog.prompt_with_triggers(params.prompt, params.loras))
        if params.coherence == "motion":  # windows through the motion UNet (engine.render.motion)
            from engine.render.motion import MotionChain, motion_unet_for

            unet = motion_unet_for(self.components.unet, engine_config.motion_adapter)
            self.chain = MotionChain(self.components, unet, prompted, frames=saved, cancel=cancel, picture=picture)
        else:
            self.chain = FrameChain(self.components, prompted, frames=saved, cancel=cancel, picture=picture,
                                    coherence_blocks=engine_config.coherence_blocks)  # fmt: skip
        self.resumed = len(saved)  # frames found on disk; chain.frames may hold more (the picture)
        if work_dir is not None:
            for index in range(len(saved), len(self.chain.frames)):
                save_frame(work_dir, index, self.chain.frames[index])

    @property
    def frames(self) -> list[np.ndarray]:
        return self.chain.frames

    @property
    def done(self) -> bool:
        return self.chain.done

    def finish(self, out: Path, *, job_id: int | None = None) -> Path:
        """CPU thread: the clip of the frames (looped, smoothed, in the job's format) with its recipe inside."""
        from engine.video.finish import finish_clip  # ffmpeg and OpenCV: only once frames exist

        params = self.params
        recipe = {**self.recipe, "job": job_id}
        return finish_clip(self.frames, out, params.fps, loop=params.loop, smooth=params.smooth, fmt=params.format,
                           recipe=recipe)  # fmt: skip


def coherence_bytes(loaded, engine_config: EngineConfig, params: RenderParams) -> int:
    """GPU thread: the most memory ``params``' cross-frame states take on ``loaded``'s UNet (0 without)."""
    if params.coherence != "cross-frame":
        return 0
    from engine.render.coherence import state_bytes

    return state_bytes(
        loaded.components.unet, engine_config.coherence_blocks, width=params.width, height=params.height,
        steps=params.steps, strength=params.strength, guided=params.guidance > 1.0, frames=params.frames,
    )  # fmt: skip


def _check_coherence(engine_config: EngineConfig, params: RenderParams, needed: int) -> None:
    """Refuse a coherence this host cannot render: motion without ``[engine] motion_adapter`` or with
    LoRAs, or cross-frame states larger than the whole ``[engine] coherence_budget_mb``."""
    if params.coherence == "motion" and not engine_config.motion_adapter:
        raise UserError("Coherence motion needs a motion adapter, which this host does not have; pick cross-frame.")
    if params.coherence == "motion" and params.loras:  # the motion UNet is a copy made without them
        raise UserError("Coherence motion does not take LoRAs yet; leave out the LoRAs or pick cross-frame.")
    budget = engine_config.coherence_budget_mb
    if needed > budget * 2**20:
        raise UserError(
            f"Cross-frame coherence at this size and step count needs about {needed / 2**20:.0f} MB, more than "
            f"this host's {budget:g} MB; pick a smaller size, fewer steps or coherence off."
        )


def next_frames(jobs: Sequence[JobRender], on_step: Callable[[int, int], None] | None = None) -> list:
    """GPU thread: the next frame of each job (``None`` for one cancelled), their steps batched.

    The jobs share one batch key (``RenderParams.batch_key``): one model and LoRA set, one control.
    Raises ``engine.errors.OutOfMemory`` when the device runs out of memory.
    """
    from engine.render.chain import render_round

    first = jobs[0]
    if first.params.coherence == "motion":  # motion jobs batch only together (batch_key); each draws its windows
        return [job.chain.next_frame(on_step) for job in jobs]
    return render_round(first.components, [job.chain for job in jobs], on_step, predict=first.predict, vae=first.vae)


def render_job(
    models,
    catalog: Catalog,
    engine_config: EngineConfig,
    params: RenderParams,
    out: Path,
    *,
    work_dir: Path | None = None,
    cancel: threading.Event | None = None,
    picture: np.ndarray | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    job_id: int | None = None,
    checks=None,
) -> RenderResult:
    """Render ``params`` (with a concrete seed) alone to ``out``, on the GPU thread of its caller.

    ``models``: an ``engine.render.weights.model_cache.ModelCache``. With ``work_dir`` the frames
    are kept there and a rerun resumes. ``on_step(step, total)`` after each denoising step,
    ``on_frame(index, frame)`` after each new frame; a set ``cancel`` raises
    ``engine.render.sampler.Cancelled`` before the next step (the unfinished frame is thrown away).
    ``checks`` (``engine.runtime.frame_checks.AloneChecks``, or None: nothing checked) sees the start
    picture before any denoising and each new frame before anything else does; a flagged one raises.
    """
    from engine.render.frames import save_frame
    from engine.render.sampler import Cancelled

    # 1. check inputs (the start picture by the safety checker), load the weights, plan the chain
    if checks is not None and picture is not None:
        checks.picture(picture)
    job = JobRender(
        use_weights(models, catalog, params), catalog, engine_config, params,
        work_dir=work_dir, cancel=cancel, picture=picture,
    )  # fmt: skip
    started = time.perf_counter()
    for index in range(job.resumed, len(job.frames)):  # the start picture, when it is frame 0
        if on_frame is not None:
            on_frame(index, job.frames[index])

    # 2. render the chain: rounds of one job
    while not job.done:
        (frame,) = next_frames([job], on_step)
        if frame is None:
            raise Cancelled(f"cancelled before frame {len(job.frames)}")
        index = len(job.frames) - 1
        if checks is not None:
            checks.frame(index, frame)
        if work_dir is not None:
            save_frame(work_dir, index, frame)
        if on_frame is not None:
            on_frame(index, frame)
    seconds = time.perf_counter() - started

    # 3. loop, smooth and encode, the recipe inside
    path = job.finish(out, job_id=job_id)
    return RenderResult(path=Path(path), seed=job.params.seed, frames=len(job.frames), seconds=seconds)

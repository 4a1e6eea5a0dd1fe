"""The one place that touches the GPU: batched denoising steps and VAE encode/decode.

Why not call the diffusers pipelines per frame? Their loop runs one prompt at a time. A server with
several jobs of the same size gets most of its speed from putting the denoising steps of all those
jobs into one UNet+ControlNet call (at batch 2 the GPU mostly waits on kernel launches), so the loop
lives here: each ``FrameTask`` is one frame being denoised, with its own scheduler, and ``step``
advances any number of them together; ``predict_noise`` is the one UNet(+ControlNet) call, run
eagerly here and compiled by ``engine.render.accel.CompiledStep``.

With a single task, float32 models and the same scheduler, seed (a CPU ``torch.Generator``) and
prompt, it computes what the diffusers pipelines compute (``tests/render/test_parity.py``):

- frame 0 (no control map): ``StableDiffusionPipeline``;
- a later frame with ``strength`` 0: ``StableDiffusionControlNetPipeline`` with ``image=`` the
  control map;
- a later frame with ``strength`` > 0: ``StableDiffusionControlNetImg2ImgPipeline`` with
  ``control_image=`` the control map and ``image=`` the *latents* that ``encode`` gives for the
  previous frame, that is the VAE posterior's mean (deterministic); given pixels, the pipeline
  would encode a sample of the posterior, drawn from the generator before the noise.

Where the pipelines differ, on purpose: with fp16 models the latents stay float32 between steps (the
pipelines keep them in the model dtype), and a strength so small that ``int(steps * strength)`` is 0
still runs one step (the pipelines would run none); see ``make_scheduler``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from engine.render import coherence as cross_frame

SCHEDULER_CLASSES = {
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "euler": (EulerDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
}


class Cancelled(Exception):
    """A job's cancel event was set; it stopped before its next denoising step."""


def make_scheduler(name: str, config: dict, steps: int, device: torch.device, strength: float = 0.0):
    """A fresh scheduler set to ``steps``; with ``strength`` > 0 only its last ``strength`` part runs.

    Returns the scheduler and the timesteps this frame will run (the img2img rule of diffusers).
    """
    cls, extra = SCHEDULER_CLASSES[name]
    scheduler = cls.from_config(config, **extra)
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if strength > 0:
        # Copied from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img.StableDiffusionImg2ImgPipeline.get_timesteps
        # (also the ControlNet img2img pipeline's), with one change: ``max(1, ...)`` runs at least
        # one step, because a frame that runs none would be the previous frame's latents plus
        # undenoised noise (the pipelines run none, and fail decoding the empty batch).
        run = max(1, min(int(steps * strength), steps))
        start = (steps - run) * scheduler.order
        timesteps = timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
    return scheduler, timesteps


@dataclass(eq=False)
class FrameTask:
    """One frame being denoised. Mutable on purpose: ``step`` advances ``latents`` and ``index``."""

    latents: torch.Tensor  # (1, 4, h/8, w/8)
    cond: torch.Tensor  # (1, 77, D)
    uncond: torch.Tensor | None  # None when guidance <= 1 (no classifier-free guidance)
    control: torch.Tensor | None  # (1, 3, H, W) in [0, 1]; None for frame 0 (text-to-image)
    guidance: float
    control_scale: float
    scheduler: object
    timesteps: torch.Tensor
    cancel: threading.Event | None = None
    index: int = 0
    coherence: cross_frame.FrameStates | None = None  # the job's cross-frame states; None: plain attention

    @property
    def done(self) -> bool:
        return self.index >= len(self.timesteps)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @property
    def rows(self) -> int:
        return 1 if self.uncond is None else 2


class Batch:
    """Tasks denoised together. What stays fixed for a frame (prompt embeddings, control maps,
    ControlNet weights) is concatenated once here, not at every step."""

    def __init__(self, components, tasks: list[FrameTask]):
        self.tasks = tasks
        dtype, device = components.dtype, components.device
        embeds, controls, scales = [], [], []
        for task in tasks:
            rows = task.rows
            embeds.append(task.cond if task.uncond is None else torch.cat([task.uncond, task.cond]))
            if task.control is not None:
                controls.append(task.control.expand(rows, -1, -1, -1))
                scales.append(task.latents.new_full((rows,), task.control_scale))
            else:
                controls.append(task.latents.new_zeros((rows, 3, *_pixel_size(task.latents))))
                scales.append(task.latents.new_zeros(rows))
        self.embeds = torch.cat(embeds).to(device, dtype)
        self.controls = torch.cat(controls).to(device, dtype)
        self.weight = torch.cat(scales).to(device, dtype).view(-1, 1, 1, 1)
        self.any_control = any(task.control is not None for task in tasks)
        self.unit_scales = all(task.control is not None and task.control_scale == 1.0 for task in tasks)
        self.coherent = any(task.coherence is not None for task in tasks)

    def model_inputs(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's latents (scaled by each scheduler) and timesteps, one row per model row."""
        latents, timesteps = [], []
        for task in self.tasks:
            t = task.timesteps[task.index]
            latents.append(task.scheduler.scale_model_input(task.latents, t).expand(task.rows, -1, -1, -1))
            timesteps.append(t.reshape(1).float().expand(task.rows))
        return torch.cat(latents).to(dtype), torch.cat(timesteps)


def _pixel_size(latents: torch.Tensor) -> tuple[int, int]:
    return latents.shape[-2] * 8, latents.shape[-1] * 8


def predict_noise(unet, controlnet, latents, timesteps, embeds, controls=None, weight=None) -> torch.Tensor:
    """The UNet's noise prediction for every row, with ControlNet residuals when there are ``controls``.

    ``controls`` None: no ControlNet call (frame 0 has no control map). ``weight`` (B, 1, 1, 1)
    scales each row's residuals by its job's control scale; None leaves them unscaled (every
    scale is 1). The compiled step (``engine.render.accel``) compiles this same function and
    always passes both, so its graph has one shape per row count.
    """
    down, mid = None, None
    if controls is not None:
        down, mid = controlnet(
            latents,
            timesteps,
            encoder_hidden_states=embeds,
            controlnet_cond=controls,
            conditioning_scale=1.0,
            guess_mode=False,
            return_dict=False,
        )
        if weight is not None:
            down = [residual * weight for residual in down]
            mid = mid * weight
    return unet(
        latents,
        timesteps,
        encoder_hidden_states=embeds,
        down_block_additional_residuals=down,
        mid_block_additional_residual=mid,
        return_dict=False,
    )[0]


@torch.inference_mode()
def step(components, batch: Batch | list[FrameTask], predict=None) -> None:
    """Advance every task by one denoising step, all in one UNet(+ControlNet) call.

    ``predict`` is an ``engine.render.accel.CompiledStep`` (None: ``predict_noise`` on the eager
    modules, skipping the ControlNet when no task has a control map).
    """
    if not isinstance(batch, Batch):
        batch = Batch(components, batch)
    noise = batch_noise(components, batch, predict)
    row = 0
    for task in batch.tasks:
        pred = noise[row : row + task.rows]
        row += task.rows
        if task.uncond is not None:
            uncond, cond = pred.chunk(2)
            pred = uncond + task.guidance * (cond - uncond)
        t = task.timesteps[task.index]
        task.latents = task.scheduler.step(pred, t, task.latents, return_dict=False)[0]
        task.index += 1


def batch_noise(components, batch: Batch, predict=None) -> torch.Tensor:
    """The noise prediction of every row of ``batch`` for its current step (no scheduler step).

    A batch with cross-frame jobs runs the eager modules with ``engine.render.coherence``'s
    attention on for this call; any other runs ``predict`` (compiled) or the eager modules as is.
    """
    latents, timesteps = batch.model_inputs(components.dtype)
    if predict is not None and not batch.coherent:
        return predict(latents, timesteps, batch.embeds, batch.controls, batch.weight)
    with cross_frame.attending(components.unet, batch.tasks) if batch.coherent else contextlib.nullcontext():
        return predict_noise(
            components.unet,
            components.controlnet,
            latents,
            timesteps,
            batch.embeds,
            batch.controls if batch.any_control else None,
            None if batch.unit_scales else batch.weight,
        )


def vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """(N, 4, h, w) latents in the VAE's dtype → (N, H, W, 3) uint8 frames, on the VAE's device.

    The one decode, run eagerly by ``decode`` and compiled by ``engine.render.accel.CompiledVae``.
    """
    images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return (images / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)


def vae_encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames → (N, 4, h, w) latents: the posterior's mean, scaled (deterministic).

    The one encode, run eagerly by ``encode`` and compiled by ``engine.render.accel.CompiledVae``.
    """
    pixels = pixels.permute(0, 3, 1, 2).to(vae.dtype) / 127.5 - 1.0
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


@torch.inference_mode()
def decode(components, latents: list[torch.Tensor], vae=None) -> list[np.ndarray]:
    """Latents → RGB uint8 frames, one VAE call for all of them (``vae``: a ``CompiledVae``)."""
    batch = torch.cat(latents).to(components.vae.dtype)
    images = vae.decode(batch) if vae is not None else vae_decode(components.vae, batch)
    return list(images.contiguous().cpu().numpy())


@torch.inference_mode()
def encode(components, frames: list[np.ndarray], vae=None) -> torch.Tensor:
    """RGB uint8 frames (each H×W×3) → their latents, (N, 4, h, w), in one VAE call (``vae``: a ``CompiledVae``)."""
    pixels = torch.from_numpy(np.stack(frames)).to(components.device)
    return vae.encode(pixels) if vae is not None else vae_encode(components.vae, pixels)

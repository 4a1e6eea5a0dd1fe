"""AnimateDiff motion (``coherence = "motion"``): the clip drawn in windows of frames that see each other.

The host's motion adapter (``[engine] motion_adapter``) is put into the SD1.5 UNet
(``UNetMotionModel.from_unet2d``); each window of up to :data:`WINDOW` frames is denoised at once,
the adapter's temporal layers letting every frame of the window attend to the others.

- **Control images**: inside a window, frame i's control image is the control map of the previous
  window's last frame moved i steps by the motion preset (``engine.render.steps.motion``). The
  first window takes the start picture's map (the picture conditions the clip through the
  ControlNet only: it is not kept as frame 0, and ``image_strength`` is not used); without a picture
  the ControlNet runs at scale 0 (it is not called).
- **Windows after the first** hold the previous window's last :data:`OVERLAP` frames: they are the
  window's first frames, and before every step their latents are set to those frames' clean latents
  (the VAE encoding of the saved frames) noised to that step's timestep, so the new frames are drawn
  continuing them (the RePaint way of conditioning on known frames). Nothing is blended: the held
  frames are the previous window's, and their re-drawn copies are dropped. Their control images are
  their own control maps.
- **Noise**: each window's from the seed and the window's number, drawn on the CPU; held latents come
  from the saved frames, so a resumed job (restarting at the last finished window) draws what the
  uninterrupted job drew.
- Per-frame prompts follow the keyframes as in the chain; colour coherence is not applied in this
  mode, and a loop is refused by the request schema (``engine.request.params``).

One window is exactly what diffusers' ``AnimateDiffControlNetPipeline`` does for the same weights,
noise and embeddings (``tests/render/test_motion.py``): :func:`denoise_window` mirrors its loop.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from engine.render import chain, sampler
from engine.render.steps.control import control_map
from engine.render.steps.motion import apply_motion
from engine.request.params import RenderParams, keyframes

WINDOW = 16  # frames denoised together (AnimateDiff's context length)
OVERLAP = 4  # frames of the previous window a later window holds


def load_adapter(adapter_id: str, dtype: torch.dtype, device: torch.device, local_files_only: bool = False):
    """The motion adapter ``adapter_id`` (``"test-tiny"``, a hub id or a folder), on ``device`` in ``dtype``."""
    from diffusers import MotionAdapter

    from engine.render.weights.models import folder_of

    folder, safetensors = folder_of(adapter_id, "motion", local_files_only)
    return MotionAdapter.from_pretrained(folder, use_safetensors=safetensors).to(device, dtype).eval()


def motion_unet(unet, adapter):
    """The UNet with the adapter's temporal layers: a ``UNetMotionModel`` in the UNet's dtype and device.

    A UNet that LoRAs were loaded into (peft layers, active or not) is copied without them first:
    ``from_unet2d`` copies the blocks' weights by name, and motion jobs take no LoRAs.
    """
    from diffusers import UNet2DConditionModel, UNetMotionModel

    state = unet.state_dict()
    if any(".base_layer." in key for key in state):
        plain = UNet2DConditionModel.from_config(unet.config)
        plain.load_state_dict({key.replace(".base_layer.", "."): v for key, v in state.items() if ".lora_" not in key})
        unet = plain.to(unet.device, unet.dtype)
    model = UNetMotionModel.from_unet2d(unet, adapter)
    return model.to(unet.device, unet.dtype).eval()


def windows(frames: int) -> list[tuple[int, int]]:
    """Each window's ``(first, stop)`` frame numbers; a later window's first ``OVERLAP`` frames are held."""
    found = [(0, min(WINDOW, frames))]
    while found[-1][1] < frames:
        start = found[-1][1] - OVERLAP
        found.append((start, min(start + WINDOW, frames)))
    return found


def window_noise(seed: int, number: int, count: int, width: int, height: int) -> torch.Tensor:
    """Window ``number``'s starting noise, (1, 4, count, h, w), drawn on the CPU."""
    generator = torch.Generator("cpu").manual_seed(seed * 1009 + number)
    return torch.randn((1, 4, count, height // 8, width // 8), generator=generator, dtype=torch.float32)


def window_controls(
    start: np.ndarray | None, held: Sequence[np.ndarray], count: int, params: RenderParams, annotator=None
) -> np.ndarray | None:
    """The window's control images, (count, H, W, 3) uint8: the held frames' own maps, then ``start``
    (a frame, the previous window's last or the picture) moved 1, 2, … steps (0, 1, … for the first
    window); None when there is nothing to take a map of."""
    if start is None:
        return None
    maps = [control_map(frame, params, annotator) for frame in held]
    moved = start
    for i in range(count - len(held)):
        if i > 0 or held:
            moved = apply_motion(moved, params.motion, params.motion_amount)
        maps.append(control_map(moved, params, annotator))
    return np.stack(maps)


def denoise_window(
    unet,
    controlnet,
    scheduler,
    timesteps: torch.Tensor,
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    controls: torch.Tensor | None,
    *,
    guidance: float,
    control_scale: float,
    held: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> torch.Tensor:
    """Denoise one window: ``latents`` (1, 4, F, h, w) scaled noise, ``cond``/``uncond`` (F, 77, D)
    per frame, ``controls`` (F, 3, H, W) in [0, 1] or None. ``held`` (1, 4, k, h, w): clean latents
    of the window's first k frames, re-noised with ``noise``'s first k frames before each step.

    Copied from ``AnimateDiffControlNetPipeline.__call__``'s denoising loop (no guess mode, no
    IP-Adapter, FreeInit or FreeNoise), with the held frames and cancel added.
    """
    frames = latents.shape[2]
    guided = uncond is not None
    embeds = torch.cat([uncond, cond]) if guided else cond
    if controls is not None:
        controls = torch.cat([controls] * 2) if guided else controls
    for i, t in enumerate(timesteps):
        if cancel is not None and cancel.is_set():
            raise sampler.Cancelled("cancelled during a motion window")
        if held is not None:
            k = held.shape[2]
            latents[:, :, :k] = scheduler.add_noise(held, noise[:, :, :k], t.reshape(1))
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        down, mid = None, None
        if controls is not None:
            control_input = torch.transpose(model_input, 1, 2)
            control_input = control_input.reshape((-1, *control_input.shape[2:]))
            down, mid = controlnet(
                control_input,
                t,
                encoder_hidden_states=embeds,
                controlnet_cond=controls,
                conditioning_scale=control_scale,
                guess_mode=False,
                return_dict=False,
            )
        noise_pred = unet(
            model_input,
            t,
            encoder_hidden_states=embeds,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        if guided:
            noise_uncond, noise_text = noise_pred.chunk(2)
            noise_pred = noise_uncond + guidance * (noise_text - noise_uncond)
        latents = scheduler.step(noise_pred, t, latents).prev_sample
        if on_step is not None:
            on_step(i + 1, len(timesteps))
    assert latents.shape[2] == frames
    return latents


def render_motion(
    components,
    unet,
    params: RenderParams,
    *,
    frames: Sequence[np.ndarray] = (),
    picture: np.ndarray | None = None,
    cancel: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the clip's frames after ``frames`` (those already saved), window by window: a window's
    frames come together once it is drawn. ``unet``: :func:`motion_unet` of ``components.unet``.
    A resumed job restarts at the window holding frame ``len(frames)`` (the frames before it are the
    held ones). Raises ``sampler.Cancelled`` when ``cancel`` is set, ``OutOfMemory`` as the chain does.
    """
    if params.seed is None:
        raise ValueError("a render needs a concrete seed (use params.with_seed())")
    device, dtype = components.device, components.dtype
    saved = list(frames)
    keys = keyframes(params.prompt)
    schedule = chain.prompt_schedule([frame for frame, _ in keys], params.frames)
    annotator = getattr(components, "annotator", None)
    with chain.out_of_memory_as_error("while encoding the prompt"):
        embeds, uncond = chain._encode_prompts(components, [text for _, text in keys], params)

    def embedding(frame: int) -> torch.Tensor:
        a, b, weight = schedule[frame]
        return torch.lerp(embeds[a], embeds[b], weight) if weight else embeds[a]

    for number, (first, stop) in enumerate(windows(params.frames)):
        if stop <= len(saved):
            continue
        count = stop - first
        keep = OVERLAP if number else 0
        held_frames = saved[first : first + keep]
        start = held_frames[-1] if held_frames else picture
        with chain.out_of_memory_as_error(f"while rendering frames {first}-{stop - 1}"):
            scheduler, timesteps = sampler.make_scheduler(
                params.scheduler, components.scheduler_config, params.steps, device
            )
            noise = window_noise(params.seed, number, count, params.width, params.height).to(device, dtype)
            maps = window_controls(start, held_frames, count, params, annotator)
            controls = None
            if maps is not None and params.control_scale > 0:
                controls = torch.from_numpy(maps).to(device).permute(0, 3, 1, 2).to(dtype) / 255.0
            held = sampler.encode(components, held_frames).to(dtype).transpose(0, 1)[None] if keep else None
            cond = torch.cat([embedding(f) for f in range(first, stop)]).to(dtype)
            negative = uncond.to(dtype).repeat(count, 1, 1) if uncond is not None and params.guidance > 1 else None
            with torch.inference_mode():
                latents = denoise_window(
                    unet,
                    components.controlnet,
                    scheduler,
                    timesteps,
                    noise * scheduler.init_noise_sigma,
                    cond,
                    negative,
                    controls,
                    guidance=params.guidance,
                    control_scale=params.control_scale,
                    held=held,
                    noise=noise,
                    on_step=on_step,
                    cancel=cancel,
                )
                drawn = sampler.decode(components, list(latents[0].transpose(0, 1)[keep:, None]))
        for offset, frame in enumerate(drawn):
            if first + keep + offset >= len(saved):
                saved.append(frame)
                yield frame


_UNETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a loaded UNet → {adapter id: its motion UNet}


def motion_unet_for(unet, adapter_id: str, local_files_only: bool = False):
    """The motion UNet of a loaded ``unet`` and adapter, built once per pair (it is a copy: the UNet's
    memory again, plus the adapter's)."""
    built = _UNETS.setdefault(unet, {})
    if adapter_id not in built:
        adapter = load_adapter(adapter_id, unet.dtype, unet.device, local_files_only)
        built[adapter_id] = motion_unet(unet, adapter)
    return built[adapter_id]


class MotionChain:
    """One motion job for the runtime, as ``engine.render.chain.FrameChain`` is one frame-by-frame job:
    ``frames`` so far, ``done``, and :meth:`next_frame`, which draws a whole window when none of it
    is left and hands its frames out one call at a time (so a window's frames arrive together)."""

    def __init__(self, components, unet, params: RenderParams, *, frames=(), cancel=None, picture=None):
        self.frames: list[np.ndarray] = list(frames)
        self.params = params
        self._on_step: Callable[[int, int], None] | None = None  # the caller of next_frame's, while it runs
        self._drawn = render_motion(
            components, unet, params, frames=frames, picture=picture, cancel=cancel, on_step=self._step
        )

    def _step(self, step: int, total: int) -> None:
        if self._on_step is not None:
            self._on_step(step, total)

    @property
    def done(self) -> bool:
        return len(self.frames) >= self.params.frames

    def next_frame(self, on_step: Callable[[int, int], None] | None = None) -> np.ndarray | None:
        """The next frame, or None when the job was cancelled (its unfinished window is dropped)."""
        self._on_step = on_step
        try:
            frame = next(self._drawn)
        except sampler.Cancelled:
            return None
        finally:
            self._on_step = None
        self.frames.append(frame)
        return frame

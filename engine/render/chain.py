"""The frame chain of one job: frame 0 from text, each next frame from the previous one.

What makes the tutorial's chain flicker and slow is fixed here: the prompt is encoded once per job
(keyframe prompts once per key, interpolated per frame), one seed gives the same starting noise to
every frame, the previous frame can seed the next (img2img ``strength``), colours are held to frame
0's, and a camera motion warps the previous frame before it conditions the next.

A clip may start from a picture (``picture``, fitted by ``engine.request.picture``): with
``image_strength`` 0 it is frame 0 exactly, above 0 frame 0 is that picture re-drawn with the prompt
(img2img at that strength, from the clip's seed). Depth and pose maps come from the annotator the
components carry (``engine.render.weights.controls.components_for``).

``FrameChain`` only plans: it builds the next ``FrameTask`` and takes the decoded frame back, so the
runtime can denoise the frames of several jobs in one batch. ``render_frames`` is the one-job loop.

Out of memory: ``FrameChain``, ``render_round`` and ``render_frames`` raise ``engine.errors.OutOfMemory``
(from ``torch.OutOfMemoryError``), so the torch-free queue layer can tell it from other failures.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import OutOfMemory
from engine.render import coherence, sampler
from engine.render.steps.color import lab_stats, match_colors
from engine.render.steps.control import control_map
from engine.render.steps.loop import OUTPUT_SHARE, blend_toward, seamless_weight
from engine.render.steps.motion import apply_motion
from engine.request.params import RenderParams, keyframes


@contextlib.contextmanager
def out_of_memory_as_error(what: str) -> Iterator[None]:
    """Turn ``torch.OutOfMemoryError`` raised in the block into ``OutOfMemory`` (same text, chained)."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        raise OutOfMemory(f"out of memory {what}: {err}") from err


def prompt_schedule(keys: Sequence[int], frames: int) -> list[tuple[int, int, float]]:
    """For each frame, ``(key a, key b, weight of b)``: linear blend between the keyframes around it.

    ``keys`` are the keyframes' frame numbers, increasing, the first 0. Past the last key the last
    prompt holds.
    """
    plan = []
    for frame in range(frames):
        later = [i for i, key in enumerate(keys) if key > frame]
        if not later:
            plan.append((len(keys) - 1, len(keys) - 1, 0.0))
            continue
        b = later[0]
        a = b - 1
        plan.append((a, b, (frame - keys[a]) / (keys[b] - keys[a])))
    return plan


def initial_noise(seed: int, width: int, height: int) -> torch.Tensor:
    """The clip's starting noise, drawn on the CPU so a seed gives the same clip on every device."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, 4, height // 8, width // 8), generator=generator, dtype=torch.float32)


def to_control_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """RGB uint8 HxWx3 → (1, 3, H, W) float in [0, 1], as the ControlNet pipelines prepare it."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255.0


@dataclass(frozen=True)
class FramePlan:
    """The CPU half of a frame's task: the img2img strength, what it starts from, its control map."""

    strength: float
    source: np.ndarray | None  # RGB uint8 the frame is re-drawn from (strength > 0); None: from noise
    control: np.ndarray | None  # RGB uint8 control map; None for frame 0


class FrameChain:
    """Plans the frames of one job. ``frames`` already rendered (for resume) may be passed in.

    ``picture`` (H×W×3 uint8 of the render size) is the fitted picture of a job with an
    ``image_key``; with ``image_strength`` 0 it becomes frame 0 at once (``frames`` then holds it).
    ``coherence_blocks``: the UNet blocks cross-frame attention uses (``params.coherence``
    ``"cross-frame"``; ``engine.render.coherence``).
    """

    def __init__(
        self,
        components,
        params: RenderParams,
        *,
        frames: Sequence[np.ndarray] = (),
        cancel: threading.Event | None = None,
        picture: np.ndarray | None = None,
        coherence_blocks: Sequence[str] = ("up",),
    ):
        if params.seed is None:
            raise ValueError("a render needs a concrete seed (use params.with_seed())")
        self.picture = _check_picture(picture, params)
        self.components = components
        self.params = params
        self.cancel = cancel
        self.frames: list[np.ndarray] = list(frames)
        device = components.device
        keys = keyframes(params.prompt)
        with out_of_memory_as_error("while encoding the prompt"):
            self._embeds, self._uncond = _encode_prompts(components, [text for _, text in keys], params)
            self._noise = initial_noise(params.seed, params.width, params.height).to(device)
        self._schedule = prompt_schedule([frame for frame, _ in keys], params.frames)
        self._reference = lab_stats(self.frames[0]) if self.frames else None
        self.coherence: coherence.FrameStates | None = None
        if self.picture is not None and not self.frames and params.image_strength == 0:
            self.accept(self.picture.copy())  # frame 0 is the picture itself
        if params.coherence == "cross-frame":
            _, later = sampler.make_scheduler(
                params.scheduler, components.scheduler_config, params.steps, device, params.strength
            )
            keep = {coherence.timestep_key(t) for t in later.tolist()}
            self.coherence = coherence.FrameStates(coherence_blocks, keep)
        self._primed = not self.frames  # frames drawn elsewhere (resume, the picture): their states are rebuilt

    @property
    def done(self) -> bool:
        return len(self.frames) >= self.params.frames

    def embedding(self, frame: int) -> torch.Tensor:
        a, b, weight = self._schedule[frame]
        return torch.lerp(self._embeds[a], self._embeds[b], weight) if weight else self._embeds[a]

    def plan(self) -> FramePlan:
        """What frame ``len(self.frames)`` starts from: the CPU half of its task (no GPU call)."""
        params = self.params
        k = len(self.frames)
        strength = params.strength if k > 0 else params.image_strength if self.picture is not None else 0.0
        control = None
        if k > 0:
            source = apply_motion(self.frames[-1], params.motion, params.motion_amount)
            if params.loop == "seamless":  # steer the closing frames back to frame 0 (steps/loop.py)
                source = blend_toward(source, self.frames[0], seamless_weight(k, params.frames))
            control = control_map(source, params, getattr(self.components, "annotator", None))
        else:
            source = self.picture  # None from text; a picture here is re-drawn (image_strength > 0)
        return FramePlan(strength=strength, source=source if strength > 0 else None, control=control)

    def task(self, plan: FramePlan, init: torch.Tensor | None = None) -> sampler.FrameTask:
        """The denoising task of ``plan``; ``init``: the latents of ``plan.source`` (``sampler.encode``)."""
        params, components = self.params, self.components
        scheduler, timesteps = sampler.make_scheduler(
            params.scheduler, components.scheduler_config, params.steps, components.device, plan.strength
        )
        latents = self._noise * scheduler.init_noise_sigma
        if plan.source is not None:
            latents = scheduler.add_noise(init.float(), self._noise, timesteps[:1])
        if self.coherence is not None:
            self._prime()
            self.coherence.begin_frame(timesteps, record=len(self.frames) + 1 < params.frames)
        return sampler.FrameTask(
            latents=latents,
            cond=self.embedding(len(self.frames)),
            uncond=self._uncond,
            control=None if plan.control is None else to_control_tensor(plan.control, components.device),
            guidance=params.guidance,
            control_scale=params.control_scale,
            scheduler=scheduler,
            timesteps=timesteps,
            cancel=self.cancel,
            coherence=self.coherence,
        )

    def _prime(self) -> None:
        """Cross-frame states for frames drawn before this chain: frame 0's, and the last one's
        (``engine.render.coherence`` says how and why this way)."""
        if self._primed:
            return
        self._primed = True
        last = [len(self.frames) - 1] if len(self.frames) > 1 else []
        latents = sampler.encode(self.components, [self.frames[i] for i in [0, *last]])
        self.coherence.anchor = self._recorded(latents[:1], 0)
        self.coherence.previous = self._recorded(latents[1:], last[0]) if last else None

    def _recorded(self, clean: torch.Tensor, frame: int) -> dict:
        """The states the UNet records for frame ``frame``'s latents ``clean`` noised to each kept timestep."""
        params, components, states = self.params, self.components, self.coherence
        name, config, device = params.scheduler, components.scheduler_config, components.device
        _, timesteps = sampler.make_scheduler(name, config, params.steps, device, params.strength)
        states.begin_frame(timesteps, record=True)
        for index, t in enumerate(timesteps):
            scheduler, _ = sampler.make_scheduler(name, config, params.steps, device)  # fresh: no step index yet
            task = sampler.FrameTask(
                latents=scheduler.add_noise(clean.float(), self._noise, t.reshape(1)),
                cond=self.embedding(frame),
                uncond=self._uncond,
                control=None,
                guidance=params.guidance,
                control_scale=0.0,
                scheduler=scheduler,
                timesteps=timesteps,
                index=index,
                coherence=states,
            )
            with torch.inference_mode():
                sampler.batch_noise(components, sampler.Batch(components, [task]))
        recorded, states.current = states.current, {}
        return recorded

    def next_task(self) -> sampler.FrameTask:
        """The denoising task for frame ``len(self.frames)`` (``render_round`` batches the encodes instead)."""
        plan = self.plan()
        init = sampler.encode(self.components, [plan.source]) if plan.source is not None else None
        return self.task(plan, init)

    def accept(self, image: np.ndarray) -> np.ndarray:
        """Take the decoded frame, hold its colours to frame 0's, and return the finished frame."""
        if self._reference is None:
            self._reference = lab_stats(image)
        elif self.params.color_coherence:
            image = match_colors(image, self._reference)
        if self.params.loop == "seamless" and self.frames:  # the closing frames cross-fade toward frame 0
            image = blend_toward(
                image, self.frames[0], OUTPUT_SHARE * seamless_weight(len(self.frames), self.params.frames)
            )
        self.frames.append(image)
        if self.coherence is not None:
            self.coherence.end_frame()
        return image


def _check_picture(picture: np.ndarray | None, params: RenderParams) -> np.ndarray | None:
    """The picture a job with an ``image_key`` needs, of the render size; none for a job without."""
    if params.image_key is None:
        return None
    if picture is None:
        raise ValueError("a job with an image_key needs its picture (engine.store.pictures.load_picture)")
    if picture.shape != (params.height, params.width, 3) or picture.dtype != np.uint8:
        raise ValueError(
            f"the picture must be {params.height}x{params.width}x3 uint8, got {picture.shape} {picture.dtype}"
        )
    return picture


def _encode_prompts(components, texts: list[str], params: RenderParams):
    """Each keyframe text once, and the negative prompt once (None without guidance)."""
    pipe = components.shared_pipeline
    guided = params.guidance > 1.0
    embeds, uncond = [], None
    with torch.inference_mode():
        for text in texts:
            want_negative = guided and uncond is None
            cond, negative = pipe.encode_prompt(
                text, components.device, 1, want_negative, negative_prompt=params.negative_prompt or None
            )
            embeds.append(cond)
            if want_negative:
                uncond = negative
    return embeds, uncond


_steps_pool: ThreadPoolExecutor | None = None


def each(fn: Callable, items: Sequence, parallel: bool = True) -> list:
    """``fn`` of every item, on a few threads when there are several: the CPU steps of a round's
    jobs (motion warp, Canny, colour match: OpenCV lets go of the GIL) while the GPU waits on them."""
    global _steps_pool
    if len(items) < 2 or not parallel:
        return [fn(item) for item in items]
    if _steps_pool is None:
        _steps_pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="animabot-steps")
    return list(_steps_pool.map(fn, items))


def start_tasks(components, chains: Sequence[FrameChain], vae=None) -> list[sampler.FrameTask]:
    """Every chain's next task, the frames they start from encoded in one VAE call."""
    # Depth and pose maps come from a model on the GPU: those plans run one after another.
    plans = each(FrameChain.plan, chains, parallel=getattr(components, "annotator", None) is None)
    starting = [i for i, plan in enumerate(plans) if plan.source is not None]
    inits: dict[int, torch.Tensor] = {}
    if starting:
        latents = sampler.encode(components, [plans[i].source for i in starting], vae)
        inits = {i: latents[n : n + 1] for n, i in enumerate(starting)}
    return [chain.task(plan, inits.get(i)) for i, (chain, plan) in enumerate(zip(chains, plans))]


def render_round(
    components,
    chains: Sequence[FrameChain],
    on_step: Callable[[int, int], None] | None = None,
    predict=None,
    vae=None,
) -> list[np.ndarray | None]:
    """The next frame of every chain, their denoising steps batched into shared model calls.

    Chains may differ in prompt, seed, steps, guidance and control scale, but not in size. A chain
    whose cancel event is set drops out before the next step and gets ``None``: its unfinished frame
    is never used. ``on_step(step, total)`` reports the slowest task after each step; ``predict``
    is an ``engine.render.accel.CompiledStep`` and ``vae`` an ``accel.CompiledVae`` (None: the eager
    modules). Raises ``OutOfMemory`` when the device runs out of memory.
    """
    with out_of_memory_as_error(f"while rendering the next frame of {len(chains)} job(s)"):
        tasks = start_tasks(components, chains, vae)
        total = max(len(task.timesteps) for task in tasks)
        batch = None
        for number in range(1, total + 1):
            running = [task for task in tasks if not task.done and not task.cancelled]
            if not running:
                break
            if batch is None or batch.tasks != running:
                batch = sampler.Batch(components, running)
            sampler.step(components, batch, predict)
            if on_step is not None:
                on_step(number, total)
        finished = [i for i, task in enumerate(tasks) if task.done and not task.cancelled]
        images = sampler.decode(components, [tasks[i].latents for i in finished], vae) if finished else []
        frames: list[np.ndarray | None] = [None] * len(chains)
        accepted = each(lambda pair: chains[pair[0]].accept(pair[1]), list(zip(finished, images)))
        for i, frame in zip(finished, accepted):
            frames[i] = frame
        return frames


def render_frames(
    components,
    params: RenderParams,
    *,
    frames: Sequence[np.ndarray] = (),
    cancel: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
    predict=None,
    vae=None,
    picture: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield the clip's frames after ``frames`` (those already rendered), one job alone.

    ``picture``: the fitted picture of a job that starts from one (see ``FrameChain``).
    ``on_step(step, total)`` is called after each denoising step; a set ``cancel`` event raises
    ``sampler.Cancelled`` before the next step, and the unfinished frame is thrown away. Raises
    ``OutOfMemory`` when the device runs out of memory (through ``FrameChain`` and ``render_round``).
    """
    chain = FrameChain(components, params, frames=frames, cancel=cancel, picture=picture)
    yield from chain.frames[len(frames) :]  # frame 0 when it is the picture itself
    while not chain.done:
        (frame,) = render_round(components, [chain], on_step, predict, vae)
        if frame is None:
            raise sampler.Cancelled(f"cancelled before frame {len(chain.frames)}")
        yield frame

"""GPU speed-ups that keep the output the same (within fp16 noise) for a given seed.

- ``prepare``: channels_last memory format, fused QKV projections, cuDNN autotuning (CUDA only).
- ``CompiledStep``: ``engine.render.sampler.predict_noise``, the UNet+ControlNet call the eager
  path runs, ``torch.compile``d ("reduce-overhead" mode, so the compiled step is replayed as a CUDA
  graph). Row counts are padded up to a few fixed buckets so jobs joining or leaving a batch reuse
  a handful of graphs instead of compiling a new one each time; padded rows are dropped. Only
  buckets compiled by ``warm_up`` run compiled, the rest eagerly, so no render ever waits for a
  compile.
- ``CompiledVae``: the VAE decode and encode (``sampler.vae_decode``/``vae_encode``) compiled the same
  way per batch-size bucket, without CUDA graphs. Inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``) makes a restarted process compile
  from cache.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from engine.render.sampler import predict_noise, vae_decode, vae_encode

log = logging.getLogger(__name__)

BUCKETS = (2, 4, 8, 16, 32)  # model rows: 2 per job with guidance
VAE_BUCKETS = (1, 2, 4, 8, 16)  # frames a round decodes or encodes: 1 per job


def prepare(components) -> None:
    """In-place layout changes that speed up CUDA inference without changing its results."""
    if components.device.type != "cuda" or getattr(components.unet, "_animabot_prepared", False):
        return  # components are cached per process: prepare them once
    components.unet._animabot_prepared = True
    torch.backends.cudnn.benchmark = True
    for module in (components.unet, components.controlnet, components.vae):
        module.to(memory_format=torch.channels_last)
    for module in (components.unet, components.controlnet):
        module.fuse_qkv_projections()
    log.info("channels_last, fused QKV projections and cuDNN autotuning on")


def memory_held(device: torch.device, kind: str) -> int:
    """Bytes torch holds on a CUDA ``device``: ``"allocated"`` (in tensors) or ``"reserved"`` (cached too)."""
    return torch.cuda.memory_allocated(device) if kind == "allocated" else torch.cuda.memory_reserved(device)


def bucket(rows: int, buckets: tuple[int, ...] = BUCKETS) -> int:
    return next((size for size in buckets if size >= rows), rows)


def buckets_up_to(rows: int, buckets: tuple[int, ...] = BUCKETS) -> list[int]:
    """Every bucket a batch of at most ``rows`` rows can fall in, smallest first."""
    return [size for size in buckets if size <= bucket(rows, buckets)]


def _padded(tensors: tuple[torch.Tensor, ...], size: int) -> tuple[torch.Tensor, ...]:
    """Each tensor with its last row repeated up to ``size`` rows (the padded rows are dropped after)."""
    pad = size - tensors[0].shape[0]
    if pad == 0:
        return tensors
    return tuple(torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]) for x in tensors)


def _compile(fn, mode: str, backend: str):
    """``torch.compile`` at fixed shapes; ``backend="eager"`` (tests on the CPU) traces without inductor."""
    options = {"mode": mode} if backend == "inductor" else {}
    return torch.compile(fn, backend=backend, dynamic=False, **options)


def use_cache_dir(cache_dir: Path | None) -> None:
    """Inductor's on-disk cache in ``cache_dir``, unless the host set ``TORCHINDUCTOR_CACHE_DIR`` itself.

    Importing diffusers imports ``torch._dynamo``, which already fills the variable in with torch's
    default (``/tmp/torchinductor_$USER``, gone at a reboot): that value counts as unset. Inductor reads
    the variable at each compile, so setting it here, before the first compile, is in time.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if cache_dir is not None and current in (None, os.path.abspath(default_cache_dir())):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).resolve())


class CompiledStep:
    """``sampler.predict_noise`` compiled for one set of components; called with the model inputs only.

    It always runs the ControlNet, with the per-row ``weight`` (0 for rows without a control map),
    so every step of a row count replays one graph.
    """

    def __init__(
        self, components, *, mode: str = "reduce-overhead", cache_dir: Path | None = None, backend: str = "inductor"
    ):
        use_cache_dir(cache_dir)
        self.components = components
        self.warmed: set[int] = set()  # buckets compiled by warm_up; other sizes run eagerly
        self._fn = _compile(predict_noise, mode, backend)

    def __call__(self, latents, timesteps, embeds, controls, weight) -> torch.Tensor:
        rows = latents.shape[0]
        size = bucket(rows)
        if size not in self.warmed:  # never stall a render for a minute-long compile
            c = self.components
            return predict_noise(c.unet, c.controlnet, latents, timesteps, embeds, controls, weight)
        latents, timesteps, embeds, controls, weight = _padded((latents, timesteps, embeds, controls, weight), size)
        out = self._fn(
            self.components.unet,
            self.components.controlnet,
            latents,
            timesteps,
            embeds,
            controls.contiguous(memory_format=torch.channels_last),
            weight,
        )
        # A CUDA-graph output is overwritten by the next replay: copy what the schedulers keep.
        return out[:rows].clone()

    @torch.inference_mode()
    def warm_up(self, width: int, height: int, rows: tuple[int, ...] = (2,)) -> float:
        """Compile (or load from the cache) the step for these sizes; returns the seconds it took."""
        started = time.perf_counter()
        c = self.components
        for count in rows:
            self.warmed.add(bucket(count))
            for _ in range(3):  # compile, record the CUDA graph, replay once
                self(
                    torch.randn(count, 4, height // 8, width // 8, device=c.device, dtype=c.dtype),
                    torch.full((count,), 500.0, device=c.device),
                    torch.randn(count, 77, c.text_encoder.config.hidden_size, device=c.device, dtype=c.dtype),
                    torch.rand(count, 3, height, width, device=c.device, dtype=c.dtype),
                    torch.ones(count, 1, 1, 1, device=c.device, dtype=c.dtype),
                )
        if c.device.type == "cuda":
            torch.cuda.synchronize(c.device)
        return time.perf_counter() - started


class CompiledVae:
    """``sampler.vae_decode`` and ``sampler.vae_encode`` compiled for one VAE, at the sizes of ``VAE_BUCKETS``.

    Inductor's default mode, without CUDA graphs: a decode is a few large kernels, so launches cost
    little, and a graph per batch size would pin a decode's activations (GiBs at batch 8) for good.
    Like ``CompiledStep``, only sizes compiled by ``warm_up`` run compiled; others run eagerly.
    """

    def __init__(self, vae, *, mode: str = "default", cache_dir: Path | None = None, backend: str = "inductor"):
        use_cache_dir(cache_dir)
        self.vae = vae
        self.warmed: set[tuple[str, int]] = set()  # ("decode" | "encode", bucket)
        self._fns = {
            "decode": (vae_decode, _compile(vae_decode, mode, backend)),
            "encode": (vae_encode, _compile(vae_encode, mode, backend)),
        }

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """As ``sampler.vae_decode``: (N, 4, h, w) latents → (N, H, W, 3) uint8."""
        return self._run("decode", latents)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """As ``sampler.vae_encode``: (N, H, W, 3) uint8 → (N, 4, h, w) latents."""
        return self._run("encode", pixels)

    def _run(self, kind: str, batch: torch.Tensor) -> torch.Tensor:
        eager, compiled = self._fns[kind]
        rows = batch.shape[0]
        size = bucket(rows, VAE_BUCKETS)
        if (kind, size) not in self.warmed:
            return eager(self.vae, batch)
        (batch,) = _padded((batch,), size)
        return compiled(self.vae, batch)[:rows]

    @torch.inference_mode()
    def warm_up(self, width: int, height: int, counts: tuple[int, ...] = (1,)) -> float:
        """Compile (or load from the cache) decode and encode for these frame counts; returns the seconds."""
        started = time.perf_counter()
        device, dtype = self.vae.device, self.vae.dtype
        for count in counts:
            size = bucket(count, VAE_BUCKETS)
            self.warmed |= {("decode", size), ("encode", size)}
            for _ in range(2):
                self.decode(torch.randn(size, 4, height // 8, width // 8, device=device, dtype=dtype))
                self.encode(torch.randint(0, 256, (size, height, width, 3), device=device, dtype=torch.uint8))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

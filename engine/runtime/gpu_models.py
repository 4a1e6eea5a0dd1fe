"""The models one runtime keeps loaded, on its GPU thread: the model cache, and the default model's compiled
step and VAE with the batch sizes still to compile.

At start :meth:`GpuModels.load` loads the default model (a model that cannot load is an error at
start) and, on CUDA, compiles one job's sizes; the runtime calls :meth:`GpuModels.warm_next` while
idle until every batch size up to a full batch is compiled. Every method but the properties runs
on the GPU thread; ``engine.render`` (and so torch) is imported only inside them.
"""

from __future__ import annotations

import functools
import logging

from engine.config import Config
from engine.ops import metrics
from engine.request.catalog import DEFAULT_MODEL

log = logging.getLogger(__name__)


class GpuModels:
    """The runtime's model cache (``cache``, made by :meth:`load`) and the sizes still ``to_warm``."""

    def __init__(self, config: Config, *, device: str) -> None:
        self.config = config
        self.device = device
        self.cache = None  # engine.render.weights.model_cache.ModelCache, made by load() on the GPU thread
        self.to_warm: list[int] = [2]  # batch rows still to compile: one job first (load sets the rest)

    @property
    def components(self):
        """The default model's ``Components`` while it is loaded (None before :meth:`load`)."""
        default = self._default()
        return default.components if default is not None else None

    @property
    def predict(self):
        """The default model's compiled step (``engine.render.accel.CompiledStep``; None: eager)."""
        default = self._default()
        return default.predict if default is not None else None

    @predict.setter
    def predict(self, step) -> None:
        self._default().predict = step

    def _default(self):
        return self.cache.peek(DEFAULT_MODEL) if self.cache is not None else None

    @property
    def wants_warm_up(self) -> bool:
        return self.predict is not None and bool(self.to_warm)

    def load(self):
        """Make the model cache and load the default model into it, then compile and warm up its
        step and VAE on CUDA: one job's sizes now, the other batch sizes up to a full batch later."""
        from engine.render import accel
        from engine.render.weights.model_cache import ModelCache

        engine = self.config.engine
        self.cache = ModelCache(self.config.catalog, engine, device=self.device, on_load=self._prepare)
        components = self.cache.get(DEFAULT_MODEL).components
        if components.device.type == "cuda":  # read at each scrape, on the scrape's thread
            for kind in ("allocated", "reserved"):
                metrics.GPU_MEMORY.labels(kind).set_function(
                    functools.partial(accel.memory_held, components.device, kind)
                )
        if self.predict is not None:
            self.warm_next()
            rows = accel.buckets_up_to(2 * max(1, engine.max_batch))
            pending = [rows[-1], *rows[:-1]]  # a full batch first, then the sizes between
            self.to_warm = [size for size in pending if size not in self.predict.warmed]
        return components

    def _prepare(self, loaded) -> None:
        """Each model load: the CUDA speed-ups, and a compiled step and VAE of its own."""
        from engine.render import accel

        components = loaded.components
        metrics.MODEL_LOADS.inc()
        accel.prepare(components)
        if self.config.engine.compile and components.device.type == "cuda":
            cache = self.config.data_dir / "compile-cache"
            loaded.predict = accel.CompiledStep(components, mode=self.config.engine.compile_mode, cache_dir=cache)
            loaded.vae = accel.CompiledVae(components.vae, cache_dir=cache)

    def warm_next(self) -> None:
        """Compile the next pending batch size at the default render size (the VAE's for as many
        frames as that batch holds jobs)."""
        render, rows = self.config.render, self.to_warm[0]
        try:  # the size stays pending until compiled, so Runtime.drain never returns mid-compile
            seconds = self.predict.warm_up(render.width, render.height, (rows,))
            vae = self._default().vae
            if vae is not None:
                seconds += vae.warm_up(render.width, render.height, (max(1, rows // 2),))
        finally:
            self.to_warm.remove(rows)
        metrics.COMPILE_SECONDS.inc(seconds)
        log.info("compiled the UNet+ControlNet step and VAE for %s at %d rows in %.0f s", render.size, rows, seconds)

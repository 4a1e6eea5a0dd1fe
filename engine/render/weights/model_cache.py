"""The models one engine keeps loaded, by catalog name: loaded on first use, least recently used out first.

A runtime serves jobs of several models, but GPU memory holds only a few (``[engine]
max_loaded_models``, default 2). :meth:`ModelCache.get` returns a loaded model, loading it (and
evicting the least recently used one when full) on a miss; each load is logged with the seconds it
took, the model-switch time (``bench/model_switch.py`` measures it). Each loaded model carries its
LoRA adapters and, on CUDA with ``compile`` on, its own compiled step: compiled code is tied to the
modules it was compiled for.

Everything here runs on the engine's GPU thread; the lock only guards against a second caller
such as a benchmark.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from engine.config import EngineConfig
from engine.render.weights import loras as lora_layers
from engine.render.weights.loras import LoraState
from engine.render.weights.models import Components, load_model
from engine.request.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedModel:
    """One model in the cache: its components, its LoRA adapters, its compiled step (or None)."""

    name: str
    components: Components
    load_seconds: float
    loras: LoraState = field(default_factory=LoraState)
    predict: object = None  # engine.render.accel.CompiledStep, set by the cache's on_load hook
    vae: object = None  # engine.render.accel.CompiledVae, set there too (LoRAs leave the VAE as it is)

    def use_loras(self, catalog: Catalog, wanted: Sequence[tuple[str, float]]) -> None:
        """Load what ``wanted`` names (once) and make exactly it active, for the next round."""
        for name, _ in wanted:
            if name not in self.loras.loaded:
                lora_layers.load(self.components, self.loras, catalog.lora(name))
                if self.predict is not None:
                    # LoRA layers replace the modules the step was compiled for: run eagerly from now on.
                    log.info("model %s: LoRA layers added, the compiled step is off for it", self.name)
                    self.predict = None
        lora_layers.activate(self.components, self.loras, wanted)


class ModelCache:
    """Loaded models by catalog name, at most ``max_loaded`` of them (least recently used goes first)."""

    def __init__(
        self,
        catalog: Catalog,
        engine_config: EngineConfig,
        *,
        device: str | None = None,
        max_loaded: int | None = None,
        on_load: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.engine_config = engine_config
        self.device = device
        self.max_loaded = max(1, max_loaded if max_loaded is not None else engine_config.max_loaded_models)
        self.on_load = on_load
        self.loads = 0  # how many loads (first loads and reloads) this cache did
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    @property
    def loaded(self) -> list[str]:
        """Names of the loaded models, least recently used first."""
        return list(self._models)

    def peek(self, name: str) -> LoadedModel | None:
        """The loaded model called ``name`` or None, without loading, waiting or counting it as a use
        (safe from the event loop while the GPU thread loads another model)."""
        return self._models.get(name)

    def get(self, name: str) -> LoadedModel:
        """The loaded model called ``name`` (``UserError`` when it is not configured or cannot load)."""
        with self._lock:
            found = self._models.get(name)
            if found is not None:
                self._models.move_to_end(name)
                return found
            entry = self.catalog.model(name)
            while len(self._models) >= self.max_loaded:
                self._evict()
            started = time.perf_counter()
            components = load_model(entry, self.engine_config, device=self.device)
            loaded = LoadedModel(name, components, time.perf_counter() - started)
            if self.on_load is not None:
                self.on_load(loaded)
            self._models[name] = loaded
            self.loads += 1
            log.info("model %s loaded in %.2f s (loaded now: %s)", name, loaded.load_seconds, ", ".join(self._models))
            return loaded

    def _evict(self) -> None:
        name, old = self._models.popitem(last=False)
        device = old.components.device
        del old
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        log.info("model %s unloaded (least recently used)", name)

"""LoRAs on a loaded model: loaded once per model as named peft adapters, set per batch.

``load_lora_weights`` reads diffusers/peft and kohya (``lora_unet_*``/``lora_te_*``) files alike
and adds the adapter to the UNet and the text encoder. A batch holds jobs of one LoRA set with one
set of weights (``RenderParams.batch_key``), so before each round :func:`activate` sets exactly
that set with ``set_adapters``, or turns every adapter off for a batch without LoRAs: nothing a job
asked for is left on for the next one.

Why ``set_adapters`` per batch rather than ``fuse_lora``/``unfuse_lora``: fusing writes
``W + s·BA`` into every targeted weight and unfusing subtracts it again, which costs a pass over
those weights for each switch and, in fp16, leaves rounding residue in the base weights after each
fuse/unfuse pair; setting adapters changes a scale per layer and leaves the base weights alone.
``bench/lora_switch.py`` measures both (README: Models and LoRAs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import UserError
from engine.render.weights.weights_check import check_lora_file
from engine.request.catalog import LoraEntry

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoraState:
    """Which adapters a loaded model holds, and which are on (None: unknown, right after a load)."""

    loaded: set[str] = field(default_factory=set)
    active: tuple[tuple[str, float], ...] | None = ()


def load(components, state: LoraState, entry: LoraEntry) -> float:
    """Load ``entry`` into the model as adapter ``entry.name`` (once); returns the seconds it took."""
    if entry.name in state.loaded:
        return 0.0
    started = time.perf_counter()
    check_lora_file(entry.file, f"LoRA {entry.name}")
    pipe = components.shared_pipeline
    try:
        pipe.load_lora_weights(str(entry.file), adapter_name=entry.name)
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(
            f"LoRA {entry.name} ({entry.file}) does not fit this model ({type(err).__name__}); "
            "use an SD1.5 LoRA in diffusers or kohya format."
        ) from err
    state.loaded.add(entry.name)
    state.active = None  # loading switches the new adapter on: activate() sets them all again
    seconds = time.perf_counter() - started
    log.info("LoRA %s loaded from %s in %.2f s", entry.name, entry.file, seconds)
    return seconds


def activate(components, state: LoraState, loras: Sequence[tuple[str, float]]) -> None:
    """Make exactly ``loras`` (name, weight) active on the model, each already loaded; ``()`` turns all off."""
    wanted = tuple(loras)
    if wanted == state.active or (not wanted and not state.loaded):
        return
    pipe = components.shared_pipeline
    if not wanted:
        pipe.disable_lora()
    else:
        pipe.enable_lora()
        pipe.set_adapters([name for name, _ in wanted], [float(weight) for _, weight in wanted])
    state.active = wanted

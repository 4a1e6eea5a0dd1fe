"""``animabot models list``: each configured model and LoRA, where it comes from, and whether it is here.

No torch: a hub id is looked up in the Hugging Face cache only (nothing is fetched), a file by its
safetensors header (``engine.render.weights.weights_check``).
"""

from __future__ import annotations

from pathlib import Path

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights import hub
from engine.render.weights.weights_check import check_lora_file, read_header
from engine.request.catalog import TEST_TINY_MODELS, Catalog


def describe_catalog(catalog: Catalog, engine: EngineConfig) -> list[str]:
    """One line per model, then per LoRA: ``NAME  SOURCE  STATE``."""
    lines = []
    for entry in catalog.models.values():
        base = entry.config or engine.model
        parts = [(entry.model, "pipeline")] + ([(base, "pipeline")] if entry.single_file else [])
        controlnet = entry.controlnet or engine.controlnet
        tiny = (base if entry.single_file else entry.model) in TEST_TINY_MODELS
        if hub.is_local(controlnet) or not tiny:  # test-tiny models bring a tiny ControlNet of their own
            parts.append((controlnet, "controlnet"))
        parts += [(entry.vae, "vae")] if entry.vae else []
        state = _worst([_presence(part, kind, entry.name) for part, kind in parts])
        lines.append(f"model {entry.name:<16} {entry.model:<48} {state}")
    for lora in catalog.loras.values():
        trigger = f", trigger {lora.trigger!r}" if lora.trigger else ""
        try:
            check_lora_file(lora.file, f"LoRA {lora.name}")
            state = f"present (weight {lora.weight:g}{trigger})"
        except UserError as err:
            state = f"missing: {err}"
        lines.append(f"lora  {lora.name:<16} {lora.file:<48} {state}")
    return lines


def _presence(source: str, kind: str, name: str) -> str:
    if source in TEST_TINY_MODELS:
        return "present (built in code)"
    if source.endswith(".safetensors"):
        try:
            read_header(source, f"model {name}")
            return "present"
        except UserError as err:
            return f"missing: {err}"
    if hub.is_local(source):
        marker = Path(source).expanduser() / hub.MARKER_FILE[kind]
        return "present" if marker.is_file() else f"missing: the folder has no {marker.name}"
    try:
        hub.fetch(source, kind, local_files_only=True)
        return "present (Hugging Face cache)"
    except UserError:
        return "not downloaded (animabot models download)"


def _worst(states: list[str]) -> str:
    return next((s for s in states if not s.startswith("present")), states[0])

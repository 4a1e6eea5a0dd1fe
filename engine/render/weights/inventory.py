"""The weights a config names, each model's own parts and its ControlNets and annotators: ``animabot
models list`` says whether each is here, ``animabot models download`` fetches those that are not.

No torch: a hub id is looked up in the Hugging Face cache only (nothing is fetched) or fetched
with ``engine.render.weights.hub``, a file is read by its safetensors header
(``engine.render.weights.weights_check``), a built-in model needs nothing
(``engine.render.weights.builtin``, whose companion rule picks a built-in model's ControlNets and
annotators here as when loading).
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights import builtin, hub
from engine.render.weights.weights_check import check_lora_file, read_header
from engine.request.catalog import DEFAULT_MODEL, Catalog, ModelEntry
from engine.request.params import CONTROLS

log = logging.getLogger(__name__)


def controlnet_of(entry: ModelEntry, engine_config: EngineConfig) -> str:
    """The id of the (canny) ControlNet a render with ``entry`` loads: the entry's or ``[engine]``'s
    setting, as ``builtin.companion`` picks it for the entry's model."""
    return builtin.companion(entry.configs_from(engine_config.model), entry.controlnet or engine_config.controlnet)


def parts(entry: ModelEntry, engine: EngineConfig) -> list[tuple[str, str]]:
    """``(id, kind)`` of everything a render with ``entry`` may load: the model (and a single-file
    checkpoint's config source), its ControlNet, its VAE, then each offered control's ControlNet and
    annotator (a control set to ``""`` is not offered), as ``builtin.companion`` picks them."""
    configs_from = entry.configs_from(engine.model)
    found = [(entry.model, "pipeline")] + ([(configs_from, "pipeline")] if entry.single_file else [])
    found.append((controlnet_of(entry, engine), "controlnet"))
    found += [(entry.vae, "vae")] if entry.vae else []
    for control in CONTROLS:
        controlnet, annotator = engine.control_ids(control)
        if control != "canny" and controlnet and annotator:
            found.append((builtin.companion(configs_from, controlnet), "controlnet"))
            found.append((builtin.companion(configs_from, annotator), "annotator"))
    return found


def download_models(
    engine_config: EngineConfig, to: Path | None = None, catalog: Catalog | None = None, *, safety_model: str = ""
) -> list[Path]:
    """Fetch the hub repos of the ``[engine]`` model's parts, then of every model in ``catalog``'s,
    then the ``[safety] model`` (``safety_model``) and the ``[engine] motion_adapter``; return their folders.

    Without ``to`` they go to the Hugging Face cache, where loading with the same ids finds them
    offline. With ``to`` each repo becomes the plain folder ``to/<repo name>``, which ``model =
    "<that folder>"`` in the config can point at. Built-in models, local folders and single files
    need no download and are skipped.
    """
    entries = [ModelEntry(DEFAULT_MODEL, engine_config.model), *(catalog.models.values() if catalog else ())]
    folders = []
    found = [part for entry in entries for part in parts(entry, engine_config)]
    found += [(safety_model, "safety")] if safety_model else []
    found += [(engine_config.motion_adapter, "motion")] if engine_config.motion_adapter else []
    for repo_id, kind in dict.fromkeys(found):
        if builtin.is_builtin(repo_id) or hub.is_local(repo_id) or repo_id.endswith(".safetensors"):
            log.info("%s needs no download", repo_id)
            continue
        local_dir = Path(to) / repo_id.rstrip("/").split("/")[-1] if to is not None else None
        log.info("downloading %s%s", repo_id, f" into {local_dir}" if local_dir else "")
        folders.append(hub.fetch(repo_id, kind, local_dir=local_dir))
    return folders


def describe_catalog(catalog: Catalog, engine: EngineConfig) -> list[str]:
    """One line per model, then per LoRA, then the motion adapter: ``NAME  SOURCE  STATE`` (a model's:
    its parts' worst)."""
    lines = []
    for entry in catalog.models.values():
        state = _worst([_presence(part, kind, entry.name) for part, kind in dict.fromkeys(parts(entry, engine))])
        lines.append(f"model {entry.name:<16} {entry.model:<48} {state}")
    for lora in catalog.loras.values():
        trigger = f", trigger {lora.trigger!r}" if lora.trigger else ""
        try:
            check_lora_file(lora.file, f"LoRA {lora.name}")
            state = f"present (weight {lora.weight:g}{trigger})"
        except UserError as err:
            state = f"missing: {err}"
        lines.append(f"lora  {lora.name:<16} {lora.file:<48} {state}")
    if engine.motion_adapter:  # coherence motion's adapter
        adapter = engine.motion_adapter
        lines.append(f"motion {'adapter':<15} {adapter:<48} {_presence(adapter, 'motion', 'motion adapter')}")
    return lines


def _presence(source: str, kind: str, name: str) -> str:
    if builtin.is_builtin(source):
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

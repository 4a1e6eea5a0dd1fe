"""The built-in models: weights built in code rather than downloaded, by the names a config uses.

``test-tiny`` and ``test-tiny-2`` are random-weight look-alikes of SD1.5 and its ControlNets
(``engine.render.weights.tiny`` and ``tiny_controls`` build them): the tests, ``model =
"test-tiny"`` in a config and ``animabot render --model test-tiny`` render with them on a CPU. They
are saved once as diffusers repos under ``$ANIMABOT_CACHE`` and then load through the same
``from_pretrained`` calls as real weights.

This registry is the one place that knows them. Whatever turns an id into a folder asks
:func:`folder_of` first (``engine.render.weights.models.folder_of``); whatever picks the ControlNet or
annotator of a render applies :func:`companion`, the one rule for a built-in model's parts.
Importing it loads no torch: building the weights imports ``tiny`` on first use.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from engine.render.weights.hub import is_local

log = logging.getLogger(__name__)

# name → the seed of its random weights (test-tiny-2: the same layout, other weights)
MODELS: dict[str, int] = {"test-tiny": 0, "test-tiny-2": 1}
NAMES = tuple(MODELS)
# Whose ControlNets and annotators every built-in model brings: they fit any built-in UNet.
COMPANIONS = "test-tiny"
_CACHE_FOLDER = "test-tiny"  # under cache_root(), one folder per layout and seed


def is_builtin(model_id: str) -> bool:
    """Whether ``model_id`` names a built-in model (nothing to download, nothing on disk to check)."""
    return model_id in MODELS


def companion(configs_from: str, configured: str) -> str:
    """The id to load for a ControlNet or annotator the host configured as ``configured``, in a render
    whose pipeline has the configs of ``configs_from`` (``ModelEntry.configs_from``).

    The rule: a built-in model brings its own ControlNets and annotators (a real one would not fit
    its layers), unless the host configured a local folder for that part, which is then used as
    given. For any other model the setting stands; an empty one (a control the host does not
    offer) stays empty.
    """
    if is_builtin(configs_from) and configured and not is_local(configured):
        return COMPANIONS
    return configured


def folder_of(model_id: str, kind: str, control: str = "canny") -> Path | None:
    """The saved folder of built-in ``model_id``'s part ``kind`` (``pipeline``, ``vae``,
    ``controlnet`` or ``annotator``, the latter two for ``control``, ``safety``: the safety
    checker, ``[safety] model = "test-tiny"``, or ``motion``: the motion adapter,
    ``[engine] motion_adapter = "test-tiny"``), built on first use; None when
    ``model_id`` is not built in. A built-in model's ControlNets and annotators are ``COMPANIONS``'.
    """
    if not is_builtin(model_id):
        return None
    if kind in ("pipeline", "vae"):
        return built_folder(MODELS[model_id]) / ("sd" if kind == "pipeline" else "sd/vae")
    if kind == "controlnet":
        return built_folder(MODELS[COMPANIONS]) / ("controlnet" if control == "canny" else f"controlnet-{control}")
    if kind == "annotator" and control != "canny":
        return built_folder(MODELS[COMPANIONS]) / f"annotator-{control}"
    if kind == "safety":
        return built_checker()
    if kind == "motion":
        return built_motion()
    raise ValueError(f"built-in models have no {kind} for {control}")


# -- building ---------------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where animabot keeps what it builds: ``$ANIMABOT_CACHE`` or ``~/.cache/animabot``."""
    return Path(os.environ.get("ANIMABOT_CACHE") or Path.home() / ".cache" / "animabot").expanduser()


def built_folder(seed: int = 0) -> Path:
    """The saved repos of the built-in model of ``seed`` (``sd/``, ``controlnet/``, and each
    control's ``controlnet-*/`` and ``annotator-*/``), built on first use.

    Built in a temporary folder beside the final one and renamed into place, so processes
    starting together never load a half-written copy: the first rename wins, the others discard
    their copy. The folder name carries a hash of the tiny layout, so a changed layout rebuilds.
    """
    from engine.render.weights import tiny  # imports torch and builds models: only needed here

    final = cache_root() / _CACHE_FOLDER / (tiny.fingerprint() + (f"-seed{seed}" if seed else ""))
    return _built_once(final, lambda folder: tiny.save_test_tiny(folder, seed=seed), _complete)


def built_checker() -> Path:
    """The saved tiny safety checker (``engine.render.weights.tiny_safety``), built on first use the
    way :func:`built_folder` builds the models."""
    from engine.render.weights import tiny_safety  # imports torch: only needed here

    final = cache_root() / _CACHE_FOLDER / f"safety-{tiny_safety.fingerprint()}"
    return _built_once(final, tiny_safety.save_tiny_checker, lambda f: (f / "preprocessor_config.json").is_file())


def built_motion() -> Path:
    """The saved tiny motion adapter (``engine.render.weights.tiny_motion``), built on first use the
    way :func:`built_folder` builds the models."""
    from engine.render.weights import tiny_motion  # imports torch: only needed here

    final = cache_root() / _CACHE_FOLDER / f"motion-{tiny_motion.fingerprint()}"
    return _built_once(final, tiny_motion.save_tiny_adapter, lambda f: (f / "config.json").is_file())


def _built_once(final: Path, save, complete) -> Path:
    """``final``, once ``save(folder)`` has written it, unless ``complete(final)`` says it is there:
    built in a temporary folder beside it and renamed into place (the first rename wins; a loser's
    copy is discarded)."""
    if complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        save(building)
        try:
            os.rename(building, final)
            log.info("built %s", final)
        except OSError:
            if not complete(final):  # not another builder winning the race
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


def _complete(folder: Path) -> bool:
    wanted = (
        "sd/model_index.json",
        "controlnet/config.json",
        "controlnet-pose/config.json",
        "annotator-pose/config.json",
    )
    return all((folder / name).is_file() for name in wanted)

"""Each control type's ControlNet and annotator, loaded the first time a job asks for that control.

``canny`` is the ControlNet ``load_components`` loads (``[engine] controlnet``), its map is plain
OpenCV. ``depth`` and ``pose`` each have their own ControlNet and an annotator model that makes the
map (``[engine] depth_controlnet``/``depth_annotator``, ``pose_controlnet``/``pose_annotator``).
``components_for`` gives the ``Components`` for a control: the same UNet, VAE and text encoder
(no second copy), with that control's ControlNet and annotator, picked for the base's model as
its canny ControlNet was (``engine.render.weights.builtin.companion``).

Jobs of different controls never share a batch: the control is part of ``RenderParams.batch_key``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import torch
from diffusers import ControlNetModel

from engine.errors import UserError
from engine.render.steps.annotate import DepthAnnotator, PoseAnnotator
from engine.render.weights import builtin, hub, models

log = logging.getLogger(__name__)

_CACHE: dict[tuple, models.Components] = {}
_LOCK = threading.Lock()


def components_for(base: models.Components, control: str, engine_config, *, local_files_only: bool = False):
    """``base`` for canny; else ``base`` with ``control``'s ControlNet and annotator, loaded once per process."""
    if control == "canny":
        return base
    configured = engine_config.control_ids(control)
    if not all(configured):
        raise UserError(f"This host does not offer the {control} control; choose canny instead.")
    controlnet_id, annotator_id = (builtin.companion(base.configs_from, part_id) for part_id in configured)
    key = (base, control, controlnet_id, annotator_id)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(base, control, controlnet_id, annotator_id, local_files_only)
        return _CACHE[key]


def _load(
    base: models.Components, control: str, controlnet_id: str, annotator_id: str, local_files_only: bool
) -> models.Components:
    started = time.perf_counter()
    # 1. find the folders (downloading hub repos that are not cached yet)
    cn_dir, cn_safetensors = models.folder_of(controlnet_id, "controlnet", local_files_only, control)
    an_dir, _ = models.folder_of(annotator_id, "annotator", local_files_only, control)
    # 2. load them
    annotator_dtype = base.dtype if base.device.type == "cuda" else torch.float32
    try:
        controlnet = ControlNetModel.from_pretrained(cn_dir, dtype=base.dtype, use_safetensors=cn_safetensors)
    except Exception as err:
        hub.raise_friendly(err, controlnet_id)
    try:
        annotator = _load_annotator(control, an_dir, base.device, annotator_dtype)
    except Exception as err:
        hub.raise_friendly(err, annotator_id)
    # 3. place the ControlNet as load_components and accel.prepare place theirs
    controlnet.to(base.device).eval().requires_grad_(False)
    if base.device.type == "cuda":
        controlnet.to(memory_format=torch.channels_last)
        controlnet.fuse_qkv_projections()
    log.info(
        "loaded the %s control (%s + %s) on %s in %.1f s",
        control, controlnet_id, annotator_id, base.device, time.perf_counter() - started,
    )  # fmt: skip
    return dataclasses.replace(base, controlnet=controlnet, annotator=annotator)


def _load_annotator(control: str, folder: Path, device: torch.device, dtype: torch.dtype):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation, VitPoseForPoseEstimation

    processor = AutoImageProcessor.from_pretrained(folder)
    if control == "depth":
        return DepthAnnotator(AutoModelForDepthEstimation.from_pretrained(folder, dtype=dtype), processor, device)
    return PoseAnnotator(VitPoseForPoseEstimation.from_pretrained(folder, dtype=dtype), processor, device)

"""The loaded models a render needs: SD1.5's parts and a Canny ControlNet, loaded once per process.

A model id in ``[engine]`` is one of:

- a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``): read from the Hugging Face cache when
  it is there (no network at all), else downloaded once with ``engine.render.weights.hub.fetch``;
- a local folder holding a diffusers layout (``model_index.json`` for the model, ``config.json``
  for the ControlNet), e.g. one made by ``animabot models download --to``;
- a built-in model (``engine.render.weights.builtin``): random weights built in code, saved once to
  a cache folder and then loaded with the same ``from_pretrained`` calls as real weights. Its
  ControlNet is the one it brings unless a local folder is configured (``builtin.companion``).

Failures the user can fix (unreachable hub, wrong id, missing folder) become ``UserError``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DPMSolverMultistepScheduler,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights import builtin, hub
from engine.render.weights.inventory import controlnet_of
from engine.request.catalog import DEFAULT_MODEL, ModelEntry

log = logging.getLogger(__name__)

DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


# eq=False: two loads are the same only if they are the same object (comparing modules field by
# field means nothing), and it keeps the instance hashable for caches keyed on it.
@dataclass(frozen=True, eq=False)
class Components:
    """Everything loaded for rendering, on ``device`` in ``dtype``, in eval mode with no gradients."""

    unet: UNet2DConditionModel
    controlnet: ControlNetModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype
    # The depth or pose control's map maker (engine.render.steps.annotate), set by
    # engine.render.weights.controls.components_for; None for canny, whose map needs no model.
    annotator: object = None
    # The model id whose configs these modules were built from (a single-file checkpoint's config
    # source): a control's ControlNet and annotator are picked for it (builtin.companion).
    configs_from: str = ""

    @cached_property
    def shared_pipeline(self) -> StableDiffusionControlNetPipeline:
        """The one pipeline over these modules, built on first use, for its helpers (``encode_prompt``).

        Not for running the pipeline: its scheduler would be state shared by every caller. (Two
        threads asking at once may each build one; one is kept, and both share the modules.)
        """
        return self.pipeline()

    def pipeline(self) -> StableDiffusionControlNetPipeline:
        """A ControlNet text-to-image pipeline over these modules (no copy) with a fresh DPM-Solver++ scheduler.

        Schedulers keep per-run state, so each call gets its own; the modules are shared.
        """
        pipe = StableDiffusionControlNetPipeline(**self._modules())
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def img2img_pipeline(self) -> StableDiffusionControlNetImg2ImgPipeline:
        """The ControlNet img2img pipeline over the same modules, with its own scheduler.

        Built directly rather than with ``from_pipe``: in diffusers 0.42 ``from_pipe`` casts the
        shared modules to float32 unless given ``dtype=`` (turning a loaded fp16 UNet into fp32
        for every pipeline), and warns on each call. Sharing is the same either way.
        """
        pipe = StableDiffusionControlNetImg2ImgPipeline(**self._modules())
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _modules(self) -> dict:
        return {
            "vae": self.vae,
            "text_encoder": self.text_encoder,
            "tokenizer": self.tokenizer,
            "unet": self.unet,
            "controlnet": self.controlnet,
            "scheduler": DPMSolverMultistepScheduler.from_config(self.scheduler_config),
            "safety_checker": None,
            "feature_extractor": None,
            "requires_safety_checker": False,
        }


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` → the current CUDA GPU when there is one, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    as given.

    A CUDA device always comes back with its index, so ``"cuda"`` and ``"cuda:0"`` are one cache key.
    """
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f'device {name} was asked for but PyTorch sees no CUDA GPU; use device = "cpu" or "auto".')
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise UserError(
                f"device {name} does not exist: this machine has {count} CUDA GPU(s), "
                f"so use cuda:0 to cuda:{count - 1} or auto."
            )
    return device


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` → float16 on CUDA, float32 elsewhere; else float16, bfloat16 or float32."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise UserError(f"dtype must be auto, float16, bfloat16 or float32, got {name!r}.") from None


def describe_device(device: str, dtype: str) -> str:
    """Where ``device`` and ``dtype`` (as configured) put a render on this machine, in words:
    ``cuda:0 (NVIDIA H100 80GB HBM3, 79 GiB), float16`` or ``cpu, float32``; ``UserError`` as
    :func:`resolve_device` (e.g. cuda asked for where PyTorch sees no GPU)."""
    resolved = resolve_device(device)
    precision = str(resolve_dtype(dtype, resolved)).removeprefix("torch.")
    if resolved.type != "cuda":
        return f"{resolved}, {precision}"
    gpu = torch.cuda.get_device_properties(resolved)
    return f"{resolved} ({gpu.name}, {gpu.total_memory / 2**30:.0f} GiB), {precision}"


# -- loading --------------------------------------------------------------------------------------
_CACHE: dict[tuple, Components] = {}
_CACHE_LOCK = threading.Lock()


def load_components(
    engine_config: EngineConfig,
    *,
    device: str | torch.device | None = None,
    local_files_only: bool = False,
) -> Components:
    """The models named in ``engine_config``, loaded once per process per (model, controlnet, device, dtype).

    ``device`` overrides ``engine_config.device``. A hub id is read from the local cache when it
    is complete there, else downloaded (unless ``local_files_only``). Raises ``UserError`` for
    what the user can fix, naming the model.
    """
    device = resolve_device(device if device is not None else engine_config.device)
    dtype = resolve_dtype(engine_config.dtype, device)
    model = engine_config.model
    controlnet = controlnet_of(ModelEntry(DEFAULT_MODEL, model), engine_config)
    key = (model, controlnet, device, dtype)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(model, controlnet, device, dtype, local_files_only, configs_from=model)
        return _CACHE[key]


def load_model(
    entry: ModelEntry,
    engine_config: EngineConfig,
    *,
    device: str | torch.device | None = None,
    local_files_only: bool = False,
) -> Components:
    """The model of one catalog entry, loaded afresh (not cached here: ``engine.render.weights.model_cache``
    keeps loaded models and decides when one goes). Its ControlNet is the entry's or ``[engine]``'s;
    a single-file checkpoint reads its configs from the entry's ``config`` or the ``[engine]`` model."""
    device = resolve_device(device if device is not None else engine_config.device)
    dtype = resolve_dtype(engine_config.dtype, device)
    configs_from = entry.configs_from(engine_config.model)
    controlnet = controlnet_of(entry, engine_config)
    what = f"model {entry.name}"
    return _load(
        entry.model, controlnet, device, dtype, local_files_only, vae=entry.vae, configs_from=configs_from, what=what
    )


def _load(
    model: str,
    controlnet: str,
    device: torch.device,
    dtype: torch.dtype,
    local_files_only: bool,
    *,
    configs_from: str,
    vae: str | None = None,
    what: str | None = None,
) -> Components:
    started = time.perf_counter()
    # 1. find the folders (downloading hub repos that are not cached yet)
    single_file = model.endswith(".safetensors")
    if single_file:  # configs from the base model; only ever read locally
        sd_dir, sd_safetensors = folder_of(configs_from, "pipeline", True)
    else:
        sd_dir, sd_safetensors = folder_of(model, "pipeline", local_files_only)
    cn_dir, cn_safetensors = folder_of(controlnet, "controlnet", local_files_only)

    # 2. load them, the same way for real and built-in weights
    try:
        cn_model = ControlNetModel.from_pretrained(cn_dir, dtype=dtype, use_safetensors=cn_safetensors)
    except Exception as err:
        hub.raise_friendly(err, controlnet)
    if single_file:
        from engine.render.weights import single_file as single

        pipe = single.load_pipeline(model, sd_dir, cn_model, dtype, what or f"model {model}")
    else:
        pipe = _from_pretrained(sd_dir, sd_safetensors, cn_model, dtype, model)
    if vae is not None:
        vae_dir, vae_safetensors = folder_of(vae, "vae", local_files_only)
        try:
            pipe.vae = AutoencoderKL.from_pretrained(vae_dir, dtype=dtype, use_safetensors=vae_safetensors)
        except Exception as err:
            hub.raise_friendly(err, vae)
    return _place(pipe, model, controlnet, device, dtype, started, configs_from)


def _from_pretrained(sd_dir, sd_safetensors, cn_model, dtype, model: str) -> StableDiffusionControlNetPipeline:
    try:
        return StableDiffusionControlNetPipeline.from_pretrained(
            sd_dir,
            controlnet=cn_model,
            dtype=dtype,
            use_safetensors=sd_safetensors,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except Exception as err:
        hub.raise_friendly(err, model)


def _place(
    pipe, model: str, controlnet: str, device: torch.device, dtype: torch.dtype, started: float, configs_from: str
) -> Components:
    # 3. place them: device, eval mode, no gradients
    modules = {name: getattr(pipe, name) for name in ("unet", "controlnet", "vae", "text_encoder")}
    for module in modules.values():
        module.to(device)  # already in dtype: from_pretrained cast it (a .to(dtype) here only warns)
        module.eval()
        module.requires_grad_(False)
    log.info("loaded %s + %s on %s (%s) in %.1f s", model, controlnet, device, dtype, time.perf_counter() - started)
    return Components(
        **modules,
        tokenizer=pipe.tokenizer,
        scheduler_config=dict(pipe.scheduler.config),
        device=device,
        dtype=dtype,
        configs_from=configs_from,
    )


def folder_of(model_id: str, kind: str, local_files_only: bool, control: str = "canny") -> tuple[Path, bool | None]:
    """The local folder for ``model_id`` of ``kind`` (``pipeline``, ``vae``, ``controlnet`` or
    ``annotator``, the last two for ``control``), and the ``use_safetensors`` to load it with:
    a built-in model's saved part, a local folder, or a hub repo (downloaded unless cached).

    Our downloads hold only ``.safetensors``; a user's own folder may hold ``.bin`` weights too,
    so diffusers picks there (preferring safetensors).
    """
    built = builtin.folder_of(model_id, kind, control)
    if built is not None:
        return built, True
    if hub.is_local(model_id):
        local = Path(model_id).expanduser()
        wanted = hub.MARKER_FILE[kind]
        if not (local / wanted).is_file():
            raise UserError(
                f"The folder {model_id} has no {wanted}, so it is not a diffusers {kind} folder; "
                "point [engine] at a folder that `animabot models download --to` made."
            )
        return local, None
    if _looks_like_path(model_id):
        raise UserError(
            f"The model folder {model_id} does not exist; check the path in the [engine] section of the config."
        )
    try:
        return hub.fetch(model_id, kind, local_files_only=True), True
    except UserError:
        if local_files_only:
            raise
    log.info("%s is not cached yet: downloading it", model_id)
    return hub.fetch(model_id, kind), True


def _looks_like_path(model_id: str) -> bool:
    """Hub ids are ``owner/name``; anything with more parts, a leading ``/``, ``.`` or ``~`` is a path."""
    return model_id.startswith(("/", ".", "~")) or "\\" in model_id or model_id.count("/") > 1

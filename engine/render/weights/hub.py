"""Fetching weights from the Hugging Face hub, and saying plainly what went wrong when that fails.

Only what diffusers needs is fetched: configs, tokenizer files and the full-precision
``.safetensors`` weights of the UNet, VAE, text encoder and ControlNet (no ``.bin``/``.ckpt``
copies, no fp16 or non-EMA variants, no safety checker). The same patterns are used online and
offline, because an offline ``snapshot_download`` checks the cached snapshot against its patterns.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from huggingface_hub import snapshot_download
from huggingface_hub.constants import is_offline_mode
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from engine.errors import UserError

try:  # huggingface_hub 2.x talks HTTP through httpx2, 1.x through httpx
    import httpx2 as _http
except ImportError:  # pragma: no cover
    import httpx as _http

DOWNLOAD_HINT = "run `animabot models download` on a machine that can reach the hub"

# A Stable Diffusion repo (stable-diffusion-v1-5/stable-diffusion-v1-5 and its fine-tunes):
# model_index.json, scheduler/, tokenizer/, {unet,vae,text_encoder}/config.json and weights.
PIPELINE_PATTERNS = [
    "*.json",
    "*.txt",
    "tokenizer/*",
    "scheduler/*",
    "unet/diffusion_pytorch_model*.safetensors",
    "vae/diffusion_pytorch_model*.safetensors",
    "text_encoder/model*.safetensors",
]
# A ControlNet repo (lllyasviel/control_v11p_sd15_canny): config.json and the weights at the root.
CONTROLNET_PATTERNS = ["*.json", "diffusion_pytorch_model*.safetensors"]
# An annotator repo (a transformers depth or pose model: depth-anything/Depth-Anything-V2-Small-hf,
# usyd-community/vitpose-base-simple): config.json, preprocessor_config.json, model.safetensors.
ANNOTATOR_PATTERNS = ["*.json", "model*.safetensors"]
PATTERNS = {
    "pipeline": PIPELINE_PATTERNS,
    "controlnet": CONTROLNET_PATTERNS,
    "vae": CONTROLNET_PATTERNS,
    "annotator": ANNOTATOR_PATTERNS,
    "safety": ANNOTATOR_PATTERNS,  # CompVis/stable-diffusion-safety-checker: the same three files
    "motion": CONTROLNET_PATTERNS,  # guoyww/animatediff-motion-adapter-v1-5-3: config.json and the weights
}
# The file that makes a folder a repo of each kind.
MARKER_FILE = {
    "pipeline": "model_index.json",
    "controlnet": "config.json",
    "vae": "config.json",
    "annotator": "preprocessor_config.json",
    "safety": "preprocessor_config.json",
    "motion": "config.json",
}
IGNORE_PATTERNS = [
    "*.fp16*",
    "*non_ema*",
    "*.bin",
    "*.ckpt",
    "*.msgpack",
    "*.onnx",
    "*.pb",
    "*.h5",
    "safety_checker/*",
]


def is_local(model_id: str) -> bool:
    """Whether ``model_id`` names a folder on this machine (rather than a hub repo)."""
    return Path(model_id).expanduser().is_dir()


def fetch(
    repo_id: str,
    kind: str,
    *,
    local_dir: Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The folder holding ``repo_id``'s files, downloaded (or only looked up, offline) as needed.

    ``kind`` is ``"pipeline"`` (a Stable Diffusion repo), ``"controlnet"`` or ``"annotator"`` (a
    transformers depth or pose model for a control map). With ``local_dir``
    the files land in that plain folder; without, in the Hugging Face cache. Failures the user can
    fix raise ``UserError``.
    """
    if kind not in MARKER_FILE:
        raise ValueError(f"kind must be one of {', '.join(MARKER_FILE)}, got {kind!r}")
    patterns = PATTERNS[kind]
    try:
        folder = snapshot_download(
            repo_id,
            allow_patterns=patterns,
            ignore_patterns=IGNORE_PATTERNS,
            local_dir=local_dir,
            local_files_only=local_files_only,
        )
    except Exception as err:
        raise_friendly(err, repo_id)
    folder = Path(folder)
    wanted = MARKER_FILE[kind]
    if not (folder / wanted).is_file():
        # allow_patterns that match nothing only warn; the folder is then empty or missing.
        raise UserError(f"{repo_id} has no {wanted}: it is not a diffusers {kind} repo; check the id in [engine].")
    return folder


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception behind it (``__cause__`` and ``__context__``), without cycles."""
    seen: list[BaseException] = []
    todo = [err]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def raise_friendly(err: Exception, model_id: str) -> NoReturn:
    """Re-raise ``err`` as its :func:`friendly_error` (chained), or as it is when it has none."""
    friendly = friendly_error(err, model_id)
    if friendly is None:
        raise err
    raise friendly from err


def friendly_error(err: BaseException, model_id: str) -> UserError | None:
    """The ``UserError`` to show for a failure to fetch or load ``model_id``; None if it is not ours to explain."""
    chain = _chain(err)

    def has(*types) -> bool:
        return any(isinstance(e, types) for e in chain)

    path = Path(model_id).expanduser()
    if path.is_dir() and not (path / "model_index.json").is_file() and not (path / "config.json").is_file():
        return UserError(
            f"The folder {model_id} has no model_index.json (nor config.json), so it is not a diffusers model folder; "
            "point [engine] at the folder `animabot models download --to` made."
        )
    if has(OfflineModeIsEnabled) or (has(LocalEntryNotFoundError) and is_offline_mode()):
        return UserError(
            f"Offline mode is on (HF_HUB_OFFLINE) and nothing is cached for {model_id}; "
            "run `animabot models download` while online, or unset HF_HUB_OFFLINE."
        )
    if has(GatedRepoError):
        return UserError(
            f"The model repo {model_id} is gated: "
            "accept its licence on huggingface.co and set HF_TOKEN, then try again."
        )
    if has(RepositoryNotFoundError):
        return UserError(
            f"There is no model repo {model_id} on the Hugging Face hub (nor a folder of that name); "
            "check the id in the [engine] section of the config."
        )
    if has(HFValidationError):
        return UserError(
            f"{model_id} is neither a folder on this machine nor a valid hub model id; check [engine] in the config."
        )
    if has(_http.TransportError) or has(ConnectionError):
        return UserError(
            f"The Hugging Face hub cannot be reached and {model_id} is not in the local cache; "
            f"{DOWNLOAD_HINT}, or set [engine] to a local model folder."
        )
    if has(LocalEntryNotFoundError):
        return UserError(f"{model_id} is not (fully) in the local cache; {DOWNLOAD_HINT}.")
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", 0) if isinstance(e, HfHubHTTPError) else 0
        if status >= 500:
            return UserError(f"The Hugging Face hub answered {status} while fetching {model_id}; try again later.")
    return None

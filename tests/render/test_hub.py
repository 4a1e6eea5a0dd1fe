"""Downloading models and explaining hub failures, against a loopback hub (tests/support/hubserver.py).

huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE when imported, so everything that talks to the
hub runs in a subprocess with its own environment; loading local folders runs in this process.
"""

import dataclasses
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError
from support.hubserver import LoopbackHub, closed_port_url, hub_env, run_python

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights import builtin, hub, inventory, models

SD_ID = "animabot-test/sd-tiny"
CN_ID = "animabot-test/cn-tiny"
# The depth and pose controls' repos: a ControlNet and an annotator (a transformers model) each.
CONTROL_IDS = {
    "depth_controlnet": ("animabot-test/cn-depth-tiny", "controlnet-depth"),
    "depth_annotator": ("animabot-test/depth-tiny", "annotator-depth"),
    "pose_controlnet": ("animabot-test/cn-pose-tiny", "controlnet-pose"),
    "pose_annotator": ("animabot-test/pose-tiny", "annotator-pose"),
}
CONTROL_CONFIG = {key: repo_id for key, (repo_id, _) in CONTROL_IDS.items()}
ANNOTATOR_EXTRAS = ["pytorch_model.bin", "tf_model.h5", "onnx/model.onnx"]

# Files real SD1.5 / ControlNet repos hold that we must not fetch (fp16 and non-EMA copies,
# pickles, the single-file checkpoints, the safety checker), as junk bytes.
SD_EXTRAS = [
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "text_encoder/pytorch_model.bin",
    "text_encoder/model.fp16.safetensors",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "v1-5-pruned-emaonly.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "README.md",
]
CN_EXTRAS = ["diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors", "images/input.png"]

RENDER = """
import numpy as np, torch
from PIL import Image
pipe = components.pipeline()
control = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3)))
image = pipe("a red cube", image=control, num_inference_steps=2, height=64, width=64,
             generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
"""


def _render(components) -> np.ndarray:
    scope = {"components": components}
    exec(RENDER, scope)
    return scope["image"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """test-tiny as two hub repos, padded with the files a real repo has that we skip."""
    root = tmp_path_factory.mktemp("served")
    tiny_dir = builtin.built_folder()
    repos = {SD_ID: root / "sd", CN_ID: root / "cn"}
    shutil.copytree(tiny_dir / "sd", repos[SD_ID])
    shutil.copytree(tiny_dir / "controlnet", repos[CN_ID])
    extras_of = {SD_ID: SD_EXTRAS, CN_ID: CN_EXTRAS}
    for repo_id, folder in CONTROL_IDS.values():
        repos[repo_id] = root / folder
        shutil.copytree(tiny_dir / folder, repos[repo_id])
        extras_of[repo_id] = CN_EXTRAS if folder.startswith("controlnet") else ANNOTATOR_EXTRAS
    for repo_id, extras in extras_of.items():
        for name in extras:
            path = repos[repo_id] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not for download " * 1000)
    return repos


@pytest.fixture(scope="module")
def downloaded(served, tmp_path_factory):
    """Download both repos (to the cache, and with ``to``) and ask for a missing one; then stop the hub."""
    root = tmp_path_factory.mktemp("downloads")
    code = f"""
from pathlib import Path
from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights.inventory import download_models
config = EngineConfig(model={SD_ID!r}, controlnet={CN_ID!r}, **{CONTROL_CONFIG!r})
result["cached"] = [str(p) for p in download_models(config)]
result["to"] = [str(p) for p in download_models(config, to=Path({str(root / "models")!r}))]
try:
    download_models(EngineConfig(model="animabot-test/nope", controlnet="test-tiny"))
except UserError as err:
    result["missing"] = str(err)
"""
    with LoopbackHub(served) as server:
        env = hub_env(server.url, root / "hf-home")
        result = run_python(code, env)
        requests = list(server.requests)
    return {"result": result, "env": env, "root": root, "requests": requests}


# -- downloading ---------------------------------------------------------------------------------
def test_download_fetches_only_what_diffusers_needs(downloaded):
    result = downloaded["result"]
    sd, cn = (Path(p) for p in result["cached"][:2])
    assert str(sd).startswith(str(downloaded["root"] / "hf-home"))
    for name in (
        "model_index.json",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "vae/config.json",
        "tokenizer/tokenizer.json",
        "scheduler/scheduler_config.json",
    ):
        assert (sd / name).is_file(), name
    assert (cn / "config.json").is_file() and (cn / "diffusion_pytorch_model.safetensors").is_file()
    for name in SD_EXTRAS:
        assert not (sd / name).exists(), name
    for name in CN_EXTRAS:
        assert not (cn / name).exists(), name
    assert not any("xet" in r for r in downloaded["requests"])


def test_download_fetches_the_depth_and_pose_controls_too(downloaded):
    folders = [Path(p) for p in downloaded["result"]["cached"][2:]]
    assert len(folders) == 4
    for folder, (_, name) in zip(folders, CONTROL_IDS.values()):
        if name.startswith("controlnet"):
            assert (folder / "diffusion_pytorch_model.safetensors").is_file()
            assert not any((folder / extra).exists() for extra in CN_EXTRAS)
        else:
            assert (folder / "model.safetensors").is_file() and (folder / "preprocessor_config.json").is_file()
            assert not any((folder / extra).exists() for extra in ANNOTATOR_EXTRAS)
    to = [Path(p).name for p in downloaded["result"]["to"]]
    assert to == ["sd-tiny", "cn-tiny", "cn-depth-tiny", "depth-tiny", "cn-pose-tiny", "pose-tiny"]


def test_downloaded_controls_load_and_render_like_test_tiny(downloaded):
    from engine.render.chain import render_frames
    from engine.render.weights.controls import components_for
    from engine.request.params import RenderParams

    root = downloaded["root"] / "models"
    local = {key: str(root / repo_id.split("/")[1]) for key, (repo_id, _) in CONTROL_IDS.items()}
    engine = EngineConfig(model=str(root / "sd-tiny"), controlnet=str(root / "cn-tiny"), device="cpu", **local)
    tiny = EngineConfig(model="test-tiny", device="cpu")
    params = RenderParams(prompt="a red cube", frames=2, steps=2, width=64, height=64, seed=5)
    for control in ("depth", "pose"):
        ours = components_for(models.load_components(engine), control, engine)
        theirs = components_for(models.load_components(tiny), control, tiny)
        wanted = dataclasses.replace(params, control=control)
        for a, b in zip(render_frames(ours, wanted), render_frames(theirs, wanted)):
            np.testing.assert_array_equal(a, b)


def test_missing_repo_says_so(downloaded):
    message = downloaded["result"]["missing"]
    assert message.startswith("There is no model repo animabot-test/nope on the Hugging Face hub")
    assert "check the id" in message


def test_cached_models_load_and_render_with_the_hub_stopped(downloaded):
    # Same HF_HOME and HF_ENDPOINT as the download, the server now stopped, HF_HUB_OFFLINE unset.
    code = f"""
import time
from engine.config import EngineConfig
from engine.render.weights.models import load_components
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
began = time.perf_counter()
components = load_components(EngineConfig(model={SD_ID!r}, controlnet={CN_ID!r}, device="cpu"))
result["load_seconds"] = time.perf_counter() - began
{RENDER}
result["image"] = image.tolist()
# Plain diffusers finds the same files offline too: our patterns cover what it checks for.
cn = ControlNetModel.from_pretrained({CN_ID!r}, local_files_only=True)
StableDiffusionControlNetPipeline.from_pretrained({SD_ID!r}, controlnet=cn, safety_checker=None,
                                                  feature_extractor=None, local_files_only=True)
result["plain_diffusers"] = True
"""
    assert "HF_HUB_OFFLINE" not in downloaded["env"]
    result = run_python(code, downloaded["env"])
    assert result["load_seconds"] < 10  # no network retries
    assert result["plain_diffusers"]
    expected = _render(models.load_components(EngineConfig(model="test-tiny", device="cpu")))
    np.testing.assert_allclose(np.array(result["image"]), expected, atol=1e-5)


def test_download_to_folder_gives_loadable_folders(downloaded):
    root = downloaded["root"] / "models"
    sd, cn = (Path(p) for p in downloaded["result"]["to"][:2])
    assert (sd, cn) == (root / "sd-tiny", root / "cn-tiny")
    assert not (sd / "safety_checker").exists() and not (sd / "unet/diffusion_pytorch_model.fp16.safetensors").exists()
    components = models.load_components(EngineConfig(model=str(sd), controlnet=str(cn), device="cpu"))
    tiny = models.load_components(EngineConfig(model="test-tiny", device="cpu"))
    assert components is not tiny
    for name in ("unet", "controlnet", "vae", "text_encoder"):
        ours, theirs = getattr(components, name).state_dict(), getattr(tiny, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name
    np.testing.assert_array_equal(_render(components), _render(tiny))


# -- failures ------------------------------------------------------------------------------------
def test_unreachable_hub_says_so_quickly(tmp_path):
    code = f"""
import time
from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights.models import load_components
began = time.perf_counter()
try:
    load_components(EngineConfig(model={SD_ID!r}, controlnet={CN_ID!r}, device="cpu"))
except UserError as err:
    result["error"] = str(err)
result["load_seconds"] = time.perf_counter() - began
"""
    result = run_python(code, hub_env(closed_port_url(), tmp_path / "hf-home"))
    assert result["error"].startswith(f"The Hugging Face hub cannot be reached and {SD_ID} is not in the local cache")
    assert "animabot models download" in result["error"]
    assert result["load_seconds"] < 10  # the snapshot path fails at once; hf_hub_download retries ~23 s


def test_offline_mode_with_nothing_cached_says_so(tmp_path):
    # Through download_models: the same hub.fetch that load_components uses, without importing torch.
    code = f"""
from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.weights.inventory import download_models
try:
    download_models(EngineConfig(model={SD_ID!r}, controlnet={CN_ID!r}))
except UserError as err:
    result["error"] = str(err)
"""
    result = run_python(code, hub_env(closed_port_url(), tmp_path / "hf-home", HF_HUB_OFFLINE="1"))
    assert result["error"].startswith(f"Offline mode is on (HF_HUB_OFFLINE) and nothing is cached for {SD_ID}")


def _caused(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:
        return err


def test_friendly_error_walks_the_cause_chain(tmp_path):
    request = httpx2.Request("GET", "http://127.0.0.1:9/api/models/a/b")
    unreachable = _caused(
        OSError("does not appear to have a file named config.json"),
        _caused(LocalEntryNotFoundError("no"), httpx2.ConnectError("refused", request=request)),
    )
    friendly = hub.friendly_error(unreachable, "a/b")
    assert isinstance(friendly, UserError) and "cannot be reached" in str(friendly)

    missing = _caused(
        OSError("is not a valid model identifier"),
        RepositoryNotFoundError("404", response=httpx2.Response(404, request=request)),
    )
    assert str(hub.friendly_error(missing, "a/b")).startswith("There is no model repo a/b")

    try:  # only __context__ (raised while handling), no explicit cause
        try:
            raise OfflineModeIsEnabled("offline")
        except OfflineModeIsEnabled:
            raise OSError("wrapped")  # noqa: B904
    except OSError as err:
        assert "Offline mode is on" in str(hub.friendly_error(err, "a/b"))

    assert hub.friendly_error(ValueError("a bug"), "a/b") is None
    (tmp_path / "notes.txt").write_text("hi")
    assert "no model_index.json" in str(hub.friendly_error(OSError("x"), str(tmp_path)))


def test_download_skips_builtin_and_local_models(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert inventory.download_models(EngineConfig(model="test-tiny", controlnet=str(tmp_path))) == []


def test_loopback_hub_answers_like_the_hub(served):
    with LoopbackHub(served) as server:
        base = f"{server.url}/{SD_ID}/resolve/main"

        def fetch(url, method="GET", headers=None):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers or {})) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as err:
                return err.code, dict(err.headers), err.read()

        status, headers, _ = fetch(f"{server.url}/api/models/animabot-test/nope")
        assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
        status, headers, _ = fetch(f"{base}/unet/diffusion_pytorch_model.safetensors.index.json", "HEAD")
        assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound") and len(headers["X-Repo-Commit"]) == 40
        size = (served[SD_ID] / "model_index.json").stat().st_size
        status, headers, body = fetch(f"{base}/model_index.json", "HEAD")
        assert (status, int(headers["Content-Length"]), body) == (200, size, b"")
        status, headers, body = fetch(f"{base}/model_index.json", headers={"Range": "bytes=10-"})
        assert (status, body) == (206, (served[SD_ID] / "model_index.json").read_bytes()[10:])

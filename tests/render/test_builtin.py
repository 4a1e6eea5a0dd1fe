"""The built-in models' one seam (engine/render/weights/builtin.py): the only production module that
names them, and its one rule for a built-in model's ControlNets and annotators, as loading, the
controls, ``models list`` and ``models download`` all apply it."""

import ast
from pathlib import Path

import torch
from diffusers import ControlNetModel

from engine.config import EngineConfig
from engine.render.weights import builtin, inventory, models
from engine.render.weights.controls import components_for
from engine.request.catalog import ModelEntry

REPO = Path(__file__).resolve().parents[2]
# The registry and the modules that build the weights it serves.
MAY_NAME_THEM = {
    "engine/render/weights/builtin.py",
    "engine/render/weights/tiny.py",
    "engine/render/weights/tiny_controls.py",
    "engine/render/weights/tiny_safety.py",
    "engine/render/weights/tiny_motion.py",
}
HUB_CONTROLNET = "lllyasviel/control_v11p_sd15_canny"


def _docstrings(tree: ast.AST) -> set[int]:
    """Docstrings, and the ``description=`` texts of schema fields (the config's documentation)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "description" and isinstance(node.value, ast.Constant):
            found.add(id(node.value))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _names_in_code(path: Path) -> list[str]:
    """``line: text`` of each name or string (not a docstring or comment: those are docs) saying "tiny"."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
        elif isinstance(node, (ast.Name, ast.arg, ast.alias, ast.Attribute, ast.FunctionDef, ast.ClassDef)):
            text = getattr(node, "id", None) or getattr(node, "arg", None) or getattr(node, "attr", None)
            text = text or getattr(node, "name", "")
        elif isinstance(node, ast.ImportFrom):
            text = node.module or ""
        else:
            continue
        if "tiny" in text.lower():
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text!r}")
    return found


def test_only_the_registry_and_its_builders_name_the_built_in_models():
    found = []
    for top in ("engine", "bot"):
        for path in sorted((REPO / top).rglob("*.py")):
            if str(path.relative_to(REPO)) not in MAY_NAME_THEM:
                found += _names_in_code(path)
    assert found == []


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_built_in_model_brings_its_parts_unless_a_local_folder_is_configured():
    local = str(builtin.built_folder(1) / "controlnet")  # test-tiny-2's weights: not the ones test-tiny brings
    assert builtin.companion("test-tiny", local) == local
    assert builtin.companion("test-tiny-2", HUB_CONTROLNET) == builtin.COMPANIONS
    assert builtin.companion(HUB_CONTROLNET, HUB_CONTROLNET) == HUB_CONTROLNET  # not built in: the setting stands
    assert builtin.companion("test-tiny", "") == ""  # a control the host does not offer stays off

    # Loading: the configured local folder, or the built-in ControlNet for a hub id.
    with_local = models.load_components(EngineConfig(model="test-tiny", controlnet=local, device="cpu"))
    with_hub_id = models.load_components(EngineConfig(model="test-tiny", controlnet=HUB_CONTROLNET, device="cpu"))
    assert _same_weights(with_local.controlnet, ControlNetModel.from_pretrained(local))
    assert _same_weights(
        with_hub_id.controlnet, ControlNetModel.from_pretrained(builtin.folder_of("test-tiny", "controlnet"))
    )
    assert not _same_weights(with_local.controlnet, with_hub_id.controlnet)

    # models list / download: the local folder is a part to check; the hub id is never fetched.
    def controlnets(engine):
        return [
            part for part, kind in inventory.parts(ModelEntry("default", "test-tiny"), engine) if kind == "controlnet"
        ]

    assert controlnets(EngineConfig(model="test-tiny", controlnet=local)) == [local, "test-tiny", "test-tiny"]
    assert set(controlnets(EngineConfig(model="test-tiny", controlnet=HUB_CONTROLNET))) == {"test-tiny"}
    assert inventory.download_models(EngineConfig(model="test-tiny", controlnet=HUB_CONTROLNET)) == []


def test_the_rule_follows_the_model_rendered_not_the_engine_model():
    # A built-in catalog model on a host whose [engine] model is a real one: its canny, depth and
    # pose parts are the built-in ones (nothing is downloaded), as they are under a built-in engine.
    engine = EngineConfig(device="cpu")
    base = models.load_model(ModelEntry("second", "test-tiny-2"), engine)
    depth = components_for(base, "depth", engine)
    under_tiny = components_for(models.load_components(EngineConfig(model="test-tiny", device="cpu")), "depth", engine)
    assert _same_weights(depth.controlnet, under_tiny.controlnet)
    built = ControlNetModel.from_pretrained(builtin.folder_of("test-tiny-2", "controlnet", "depth"))
    assert _same_weights(depth.controlnet, built)
    # A single-file checkpoint takes the rule of the model its configs come from.
    single = ModelEntry("single", "x.safetensors", config="test-tiny")
    assert inventory.parts(single, engine)[1:3] == [("test-tiny", "pipeline"), ("test-tiny", "controlnet")]

"""The layer rules, stated by folder and checked two ways.

Each folder owns one thing and imports only what sits below it::

    bot/             Discord and the command line           (the runtime only lazily: `run --no-engine`)
    engine/runtime/  the GPU worker                          (torch only lazily, through engine.render)
    engine/store/    SQL          engine/render/  torch      (render may use engine/video)
    engine/video/    ffmpeg
    engine/config    the host's config file
    engine/ops/      the metrics every process counts into, and their HTTP endpoint
    engine/request/  the torch-free words of a job; engine/errors, engine/files beside it

1. Every import statement (at the top of a module or inside a function) names only a folder the
   importer's folder may use: a lazy import may postpone loading torch, never break the order.
2. Importing a module loads only what its folder may load: every module is imported in a fresh
   interpreter (``sys.modules``), so the bot, the runtime, the store, video and request never load
   torch at import time, and nothing but the bot loads discord.
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = ("torch", "diffusers", "transformers", "accelerate", "peft")
BASE = ("engine.errors", "engine.files")
REQUEST = ("engine.request", *BASE)

# folder → the folders of ours its import statements may name (its own is always allowed).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "engine.request": BASE,
    "engine.errors": (),
    "engine.files": (),
    "engine.config": REQUEST,
    "engine.ops": BASE,  # the metrics every process counts into (issue 23)
    "engine.store": ("engine.ops", "engine.config", *REQUEST),
    "engine.video": ("engine.config", *REQUEST),
    "engine.render": ("engine.video", "engine.config", *REQUEST),
    "engine.runtime": ("engine.ops", "engine.store", "engine.render", "engine.video", "engine.config", *REQUEST),
    "bot": ("engine.ops", "engine.runtime", "engine.store", "engine.render", "engine.video", "engine.config", *REQUEST),
}
# folder → the imports of ours that may only sit inside a function (they would load torch).
ONLY_LAZILY: dict[str, tuple[str, ...]] = {
    "engine.runtime": ("engine.render",),
    "bot": ("engine.runtime", "engine.render"),
}
# folder → third-party packages its import statements may never name.
NEVER_NAMES: dict[str, tuple[str, ...]] = {
    "engine.request": (*TORCH, "discord", "cv2"),
    "engine.config": (*TORCH, "discord"),
    "engine.ops": (*TORCH, "discord"),
    "engine.store": (*TORCH, "discord", "cv2"),
    "engine.video": (*TORCH, "discord"),
    "engine.render": ("discord",),
    "engine.runtime": (*TORCH, "discord"),
    "bot": TORCH,
}
# folder → what importing any of its modules may never load (checked through sys.modules).
NEVER_LOADS: dict[str, tuple[str, ...]] = {
    "engine.request": (*TORCH, "discord", "engine.config", "engine.store", "engine.render", "engine.video"),
    "engine.ops": (*TORCH, "discord", "bot", "engine.runtime", "engine.store", "engine.render", "engine.config"),
    "engine.store": (*TORCH, "discord", "bot", "engine.runtime", "engine.render", "engine.video"),
    "engine.video": (*TORCH, "discord", "bot", "engine.runtime", "engine.store", "engine.render"),
    "engine.render": ("discord", "bot", "engine.runtime", "engine.store"),
    "engine.runtime": (*TORCH, "discord", "bot"),
    "bot": TORCH,
}


def _folder_of(module: str) -> str | None:
    """The layer folder a module of ours belongs to (``engine.store.claims`` → ``engine.store``)."""
    for folder in sorted(MAY_IMPORT, key=len, reverse=True):
        if module == folder or module.startswith(folder + "."):
            return folder
    return None


def _source_files() -> dict[str, Path]:
    found = {}
    for top in ("engine", "bot"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str) -> list[tuple[int, str, bool]]:
    """``(line, imported module, at top level)`` for each import statement in ``path``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}  # `if TYPE_CHECKING:` imports load nothing: not top level
    top_level |= {
        id(n) for node in tree.body if isinstance(node, ast.If) and not _type_checking(node) for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found += [(node.lineno, f"{base}.{alias.name}", id(node) in top_level) for alias in node.names]
            found.append((node.lineno, base, id(node) in top_level))
    return found


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _is_under(module: str, names: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def test_every_module_belongs_to_a_layer_folder():
    assert [m for m in _source_files() if m not in ("engine", "bot") and _folder_of(m) is None] == []


def test_imports_only_go_down_even_inside_functions():
    sources = _source_files()
    broken = []
    for module, path in sources.items():
        folder = _folder_of(module)
        if folder is None:
            continue
        for line, target, top in _imports(path, module):
            where = f"{path.relative_to(REPO)}:{line} imports {target}"
            target_folder = _folder_of(target)
            if target_folder is None:
                if _is_under(target, NEVER_NAMES.get(folder, ())):
                    broken.append(f"{where} ({folder} never uses it)")
                continue
            if target_folder != folder and target_folder not in MAY_IMPORT[folder]:
                broken.append(f"{where} ({folder} may not import {target_folder})")
            elif top and _is_under(target, ONLY_LAZILY.get(folder, ())):
                broken.append(f"{where} at the top level (only lazily: it loads torch)")
    assert broken == []


def _first_importers(modules: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Import ``modules`` one after another in a fresh interpreter; for each that loads a forbidden
    package first, the packages it loaded. A forbidden package stays loaded once imported, so the
    module named is the one (directly or through its imports) that pulled it in."""
    code = f"""
import importlib, json, sys
forbidden = {forbidden!r}
def bad():
    return sorted(n for n in sys.modules if any(n == f or n.startswith(f + ".") for f in forbidden))
found, seen = {{}}, set(bad())
for name in {modules!r}:
    importlib.import_module(name)
    new = [n for n in bad() if n not in seen and n.count(".") <= 2]
    new = new or [n for n in bad() if n not in seen][:3]
    if new:
        found[name] = new
    seen.update(bad())
print(json.dumps(found))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_importing_a_folder_loads_only_what_it_may():
    sources = sorted(_source_files())
    loaded = {
        folder: _first_importers([m for m in sources if _folder_of(m) == folder], never)
        for folder, never in NEVER_LOADS.items()
    }
    assert {folder: found for folder, found in loaded.items() if found} == {}


# Discord syntax the engine must not speak: channel/user/role mentions, custom emoji, slash commands.
DISCORD_SYNTAX = re.compile(r"<[#@][!&]?\{?\w*\}?>|<a?:\w+:|(?<![\w/.])/(animate|cancel|queue|mux|limits|deliver)\b")


# Discord's words: only the config reader names the [discord] section, and only the released schema
# migrations (which are never edited) still spell the columns' old names.
DISCORD_WORDS = re.compile(r"\b(import|from) discord\b|\bdiscord\.\w|message_id|guild_limits")
WORDS_ALLOWED = {"config.py", "schema.py", "schema_pg.py"}  # the migrations name the old table


def test_the_engine_speaks_no_discord():
    found = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DISCORD_SYNTAX.search(line) or (path.name not in WORDS_ALLOWED and DISCORD_WORDS.search(line)):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []

"""The layer rules, checked in fresh interpreters through ``sys.modules``.

bot/ → engine/queue → engine/video, engine/render: imports only go down. The render layer never
imports the queue or the bot; the queue and video layers load neither torch, diffusers nor discord;
the bot never loads torch or diffusers at import time. Each module is imported alone, so a module
that breaks a rule is named in the failure.
"""

import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = ("torch", "diffusers", "transformers", "accelerate")


def _modules(package: str) -> list[str]:
    path = REPO / package.replace(".", "/")
    found = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
        found.append(info.name)
    return sorted(found)


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
    new = [n for n in bad() if n not in seen and "." not in n.removeprefix("engine.").removeprefix("bot.")]
    new = new or [n for n in bad() if n not in seen][:3]
    if new:
        found[name] = new
    seen.update(bad())
print(json.dumps(found))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_render_never_imports_the_queue_or_the_bot():
    assert _first_importers(_modules("engine.render"), ("engine.queue", "bot", "discord")) == {}


def test_queue_and_video_load_neither_torch_nor_discord():
    modules = _modules("engine.queue") + _modules("engine.video")
    assert _first_importers(modules, (*TORCH, "discord", "bot")) == {}


def test_what_the_bot_side_needs_of_the_engine_is_torch_free():
    modules = [
        "engine.render.params",
        "engine.render.picture",
        "engine.render.catalog",
        "engine.render.weights_check",
        "engine.render.presence",
        "engine.config",
        "engine.errors",
        "engine.files",
    ]
    assert _first_importers(modules, TORCH) == {}


def test_the_bot_never_loads_torch_at_import():
    assert _first_importers(_modules("bot"), TORCH) == {}


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

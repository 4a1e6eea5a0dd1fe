"""The bot's modules import one another without a circle, and only the cogs know the bot class.

The graph is read from the source with ``ast``, so it holds every import statement: at the top of
a module, under ``if TYPE_CHECKING:`` (a type-only circle still ties the modules together) and
inside functions (a lazy import that dodges a circle is still one). A helper takes what it uses
(the store, the config, the HTTP session, the Discord client), never the whole ``AnimaBot``: only
the cogs and the command line that starts the bot import ``bot.client``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOT_CLASS = "bot.client"
MAY_KNOW_THE_BOT = ("bot.cogs.", "bot.cli.")


@cache
def modules() -> dict[str, Path]:
    """``bot.delivery.results`` → its file, for every module and package of ``bot/``."""
    found = {}
    for path in sorted((REPO / "bot").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def owner(name: str) -> str | None:
    """The bot module that ``name`` is, or is defined in (``bot.text.limits.shorten`` → ``bot.text.limits``)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports_of(module: str) -> frozenset[str]:
    """The bot modules ``module`` imports, wherever the import statement sits."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..text import y
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names += [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in `base`
    return frozenset(found for found in map(owner, names) if found is not None and found != module)


def cycles() -> list[list[str]]:
    """One import circle per edge that closes one (``[a, b, a]``), in a depth-first walk of the graph."""
    found, state = [], {}  # state: "open" while on the walk's path, "done" once all it reaches is walked
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(imports_of(module)):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = "done"

    for module in sorted(modules()):
        if module not in state:
            walk(module)
    return found


def test_the_graph_counts_type_only_and_lazy_imports():
    # the cogs name the bot class only for type hints, under `if TYPE_CHECKING:`
    assert BOT_CLASS in imports_of("bot.cogs.animate")
    # the command line imports the bot's runner inside the function that starts it
    assert "bot.cli.run" in imports_of("bot.cli.main")


def test_the_bot_modules_import_one_another_without_a_circle():
    assert [" → ".join(cycle) for cycle in cycles()] == []


def test_only_the_cogs_and_the_command_line_know_the_bot_class():
    knowing = sorted(module for module in modules() if BOT_CLASS in imports_of(module))
    assert [module for module in knowing if not module.startswith(MAY_KNOW_THE_BOT)] == []

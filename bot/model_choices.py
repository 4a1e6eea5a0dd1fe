"""The models and LoRAs a member of a guild may pick: the host's catalog, narrowed by the guild's limits.

Used by ``/animate`` (its ``model``/``lora`` options, their autocomplete, and the check before a job
is queued, re-rolls included), ``/models`` and ``/limits set``. Torch-free: the catalog is plain data.
"""

from __future__ import annotations

import re

from bot.guild_limits import GuildLimits, get_limits
from engine.config import Config
from engine.request.catalog import Catalog
from engine.request.params import RenderParams
from engine.store.store import JobStore


def allowed_models(catalog: Catalog, limits: GuildLimits) -> list[str]:
    """The configured models this guild allows, in config order (``default`` first)."""
    return [name for name in catalog.models if not limits.allowed_models or name in limits.allowed_models]


def allowed_loras(catalog: Catalog, limits: GuildLimits) -> list[str]:
    return [name for name in catalog.loras if not limits.allowed_loras or name in limits.allowed_loras]


async def guild_choices(store: JobStore, config: Config, guild_id: int | None) -> tuple[list[str], list[str]]:
    """``(models, loras)`` a member of ``guild_id`` may pick: ``config``'s catalog, narrowed by the
    guild's limits in ``store`` (``config.limits`` where the guild set none)."""
    catalog = config.catalog
    if guild_id is None:
        return list(catalog.models), list(catalog.loras)
    limits = await get_limits(store, guild_id, defaults=config.limits)
    return allowed_models(catalog, limits), allowed_loras(catalog, limits)


async def check_params(store: JobStore, config: Config, params: RenderParams, guild_id: int | None) -> None:
    """``UserError`` naming what exists when ``params`` names a model or LoRA that is not configured
    (or was removed since: a re-roll) or that this guild does not allow."""
    models, loras = await guild_choices(store, config, guild_id)
    config.catalog.check(params.model, params.loras, allowed_models=models, allowed_loras=loras)


def check_admin_names(catalog: Catalog, models: list[str] | None, loras: list[str] | None) -> None:
    """``/limits set models:... loras:...``: each name must be configured."""
    for name in models or ():
        catalog.model(name)
    for name in loras or ():
        catalog.lora(name)


def models_text(catalog: Catalog, models: list[str], loras: list[str]) -> str:
    """``/models``: what this server may use, one line each (clipped by the caller's reply)."""
    lines = ["**Models on this server**"]
    for name in models:
        entry = catalog.models[name]
        lines.append(
            f"- `{name}`" + (" (used when you leave model out)" if name == "default" else f": {_short(entry.model)}")
        )
    if loras:
        lines.append("**LoRAs** (`lora: name` or `name:weight`, several separated by commas)")
        for name in loras:
            lora = catalog.loras[name]
            trigger = f", adds “{lora.trigger}”" if lora.trigger else ""
            lines.append(f"- `{name}`: weight {lora.weight:g}{trigger}")
    else:
        lines.append("No LoRAs on this server.")
    return "\n".join(lines)


def _short(source: str) -> str:
    """A model's source without the host's folders: a hub id as it is, else the file or folder name."""
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not source.endswith(".safetensors"):
        return source
    return source.rstrip("/").rsplit("/", 1)[-1]


def parse_lora_option(catalog: Catalog, text: str | None) -> tuple[tuple[str, float], ...]:
    """The ``lora`` option as typed → checked ``(name, weight)`` pairs (``UserError`` names what exists)."""
    if text is None or not text.strip():
        return ()
    return catalog.resolve_loras(text)

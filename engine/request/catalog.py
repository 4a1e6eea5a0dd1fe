"""The models and LoRAs a host configured, by the names members pick: no torch, so the bot can use it.

``[models.NAME]`` tables name checkpoints (a hub id, a diffusers folder or one single-file
``.safetensors``), with an optional ControlNet and VAE each; ``[engine] model`` is always there as
``default``. ``[loras.NAME]`` tables name LoRA files with a default weight and optional trigger
words. A render asks for a model by name and for LoRAs as ``(name, weight)`` pairs
(``RenderParams.model``/``loras``); :meth:`Catalog.check` refuses a name that is not configured
with one sentence naming those that are.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError

DEFAULT_MODEL = "default"
MAX_LORAS = 4
LORA_WEIGHT_RANGE = (-2.0, 2.0)
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
MAX_CHOICE_LENGTH = 100  # ... each name and value at most 100 characters

# A [models.NAME]/[loras.NAME] name, as members type it (the config's schema checks the tables'
# names with it, a request's LoRA names are checked with it: engine.request.params).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
NAME_RULE = "1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class ModelEntry:
    """One pickable model. ``controlnet``/``vae`` ``None``: the ``[engine]`` ControlNet, the model's own VAE.

    ``config`` is the diffusers folder (or hub id) whose configs a single-file checkpoint is read
    with; ``None``: the ``[engine]`` model's.
    """

    name: str
    model: str
    controlnet: str | None = None
    vae: str | None = None
    config: str | None = None

    @property
    def single_file(self) -> bool:
        return self.model.endswith(".safetensors")

    def configs_from(self, engine_model: str) -> str:
        """The model whose configs (and so layer sizes) this entry's pipeline has: its own, or for
        a single-file checkpoint its ``config`` or else ``engine_model`` (the ``[engine]`` model)."""
        return (self.config or engine_model) if self.single_file else self.model


@dataclass(frozen=True)
class LoraEntry:
    """One pickable LoRA: its ``.safetensors`` file (diffusers or kohya layout), default weight, trigger words."""

    name: str
    file: str
    weight: float = 1.0
    trigger: str = ""


@dataclass(frozen=True, eq=False)
class Catalog:
    """The configured models (``default`` first) and LoRAs, by name."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    loras: dict[str, LoraEntry] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------------
    def model(self, name: str) -> ModelEntry:
        """The entry called ``name``; ``UserError`` naming the configured models otherwise."""
        try:
            return self.models[name]
        except KeyError:
            raise UserError(f"There is no model {name!r}; choose one of: {_names(self.models)}.") from None

    def lora(self, name: str) -> LoraEntry:
        try:
            return self.loras[name]
        except KeyError:
            have = _names(self.loras) if self.loras else "none are configured"
            raise UserError(f"There is no LoRA {name!r}; choose one of: {have}.") from None

    def check(
        self,
        model: str,
        loras: Iterable[tuple[str, float]] = (),
        *,
        allowed_models: Iterable[str] | None = None,
        allowed_loras: Iterable[str] | None = None,
    ) -> None:
        """``UserError`` when ``model`` or a LoRA is not configured, or not among the allowed ones (None: all)."""
        self.model(model)
        if allowed_models is not None and model not in set(allowed_models):
            allowed = [m for m in self.models if m in set(allowed_models)]
            raise UserError(f"This server does not allow the model {model!r}; choose one of: {', '.join(allowed)}.")
        for name, _ in loras:
            self.lora(name)
            if allowed_loras is not None and name not in set(allowed_loras):
                allowed = [n for n in self.loras if n in set(allowed_loras)]
                have = ", ".join(allowed) if allowed else "none"
                raise UserError(f"This server does not allow the LoRA {name!r}; allowed: {have}.")

    def resolve_loras(self, text: str | None) -> tuple[tuple[str, float], ...]:
        """``"pixel:0.6, ink"`` → ``(("pixel", 0.6), ("ink", <ink's default weight>))``, each name checked."""
        pairs = []
        for name, weight in parse_lora_specs(text):
            entry = self.lora(name)
            pairs.append((name, entry.weight if weight is None else weight))
        return tuple(pairs)

    def prompt_with_triggers(self, prompt: str, loras: Iterable[tuple[str, float]]) -> str:
        """``prompt`` with the trigger words of the given LoRAs appended to each keyframe's text."""
        words = [self.loras[name].trigger for name, _ in loras if name in self.loras and self.loras[name].trigger]
        if not words:
            return prompt
        suffix = ", " + ", ".join(words)
        return " | ".join(piece.strip() + suffix for piece in prompt.split("|"))

    # -- the command line ---------------------------------------------------------------------
    def for_command_line(self, value: str, built_in: Collection[str] = ()) -> tuple[Catalog, str]:
        """``animabot render --model VALUE``: a configured name wins; else a hub id, an existing path
        or one of ``built_in`` (the names of the models built in code, which the render layer's
        registry knows) is used as a one-off entry named ``VALUE``. Anything else: ``UserError``."""
        if value in self.models:
            return self, value
        if value in built_in or Path(value).expanduser().exists() or _looks_like_hub_id(value):
            models = {**self.models, value: ModelEntry(value, value)}
            return Catalog(models, self.loras), value
        also = f" or a built-in model ({', '.join(built_in)})" if built_in else ""
        raise UserError(
            f"There is no model {value!r}: configured models are {_names(self.models)}; "
            f"else give a hub id (org/name), an existing path{also}."
        )

    # -- autocomplete -------------------------------------------------------------------------
    def model_choices(self, typed: str, allowed: Iterable[str] | None = None) -> list[str]:
        """Configured model names matching what a member typed (prefix matches first), at most 25."""
        names = [n for n in self.models if allowed is None or n in set(allowed)]
        return match_names(names, typed)

    def lora_choices(self, typed: str, allowed: Iterable[str] | None = None) -> list[str]:
        """Completions of the last item of a comma-separated LoRA list, each the whole option value."""
        head, _, last = typed.rpartition(",")
        prefix = f"{head.strip()}, " if head.strip() else ""
        chosen = {name for name, _ in _split(head)}
        names = [n for n in self.loras if (allowed is None or n in set(allowed)) and n not in chosen]
        values = [prefix + name for name in match_names(names, last.split(":")[0].strip())]
        return [v for v in values if len(v) <= MAX_CHOICE_LENGTH]


def match_names(names: Iterable[str], typed: str) -> list[str]:
    """Names starting with ``typed`` (case-insensitive), then those containing it; at most 25."""
    typed = typed.strip().lower()
    names = list(names)
    first = [n for n in names if n.lower().startswith(typed)]
    then = [n for n in names if typed in n.lower() and n not in first]
    return (first + then)[:MAX_CHOICES]


def parse_lora_specs(text: str | None) -> list[tuple[str, float | None]]:
    """``"pixel:0.6, ink"`` → ``[("pixel", 0.6), ("ink", None)]`` (None: the LoRA's default weight)."""
    pairs = _split(text or "")
    if len(pairs) > MAX_LORAS:
        raise UserError(f"At most {MAX_LORAS} LoRAs fit in one render, got {len(pairs)}.")
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise UserError("Each LoRA can be named once per render; give one weight per LoRA.")
    return pairs


def _split(text: str) -> list[tuple[str, float | None]]:
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, weight = item.partition(":")
        if not sep:
            pairs.append((name.strip(), None))
            continue
        try:
            value = float(weight)
        except ValueError:
            raise UserError(f"A LoRA is NAME or NAME:WEIGHT, like pixel:0.8; could not read {item!r}.") from None
        check_lora_weight(name.strip(), value)
        pairs.append((name.strip(), value))
    return pairs


def check_lora_weight(name: str, weight: float) -> None:
    low, high = LORA_WEIGHT_RANGE
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not low <= weight <= high:
        raise UserError(f"The weight of LoRA {name} must be between {low:g} and {high:g}, got {weight!r}.")


def build_catalog(engine_model: str, models: dict, loras: dict) -> Catalog:
    """The catalog of the ``[models.*]`` and ``[loras.*]`` tables, with ``default`` = ``[engine] model``.

    The tables come as the config's schema checked them (``engine.config.ModelTable``/``LoraTable``:
    their names, keys, types and the LoRA weight's range), so this only builds the entries.
    """
    entries = {DEFAULT_MODEL: ModelEntry(DEFAULT_MODEL, engine_model)}
    entries |= {name: ModelEntry(name=name, **table) for name, table in models.items()}
    return Catalog(entries, {name: LoraEntry(name=name, **table) for name, table in loras.items()})


def _looks_like_hub_id(value: str) -> bool:
    return re.fullmatch(r"[\w.-]+/[\w.-]+", value) is not None


def _names(table: dict) -> str:
    return ", ".join(table)

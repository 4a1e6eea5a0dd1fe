"""How the project declares a pydantic schema, and how its errors read: no torch, no discord.

The config file (``engine.config``) is a pydantic schema, and so are the words of a request
(``engine.request.params``). Each:

- uses :data:`SCHEMA` as its ``ConfigDict``: an unknown key is refused (a misspelling never passes
  silently), ``inf``/``nan`` are not numbers, defaults are checked too; and is frozen
  (``@dataclass(frozen=True, config=SCHEMA)``: pydantic before 2.9 ignores ``frozen`` in the
  config of a dataclass; a model adds ``frozen=True`` to its config);
- declares each key once, as ``name: <type> = Field(<default>, <range>, description="<one line>")``
  (:func:`allowed` words the range, :func:`description` reads the line back). Where a person writes
  the values (a TOML file), the scalar types are pydantic's ``StrictInt``, ``StrictFloat``,
  ``StrictBool`` and ``StrictStr``: ``"48"`` is refused as a number rather than guessed at (a quoted
  number is a mistake the host should see, not one the code should absorb);
- turns a ``ValidationError`` into sentences with :func:`error_sentences`: one per error, each
  naming where it is and what is allowed, an unknown name with the closest valid one.

:class:`Wording` says how a location is named (``frames``, ``[engine] max_batch``, an environment
variable); a file format subclasses it.

A request differs in three ways, for it comes from members and files rather than from its host: it
is a plain frozen dataclass whose fields carry these types (an unknown key is ignored, so a recipe
of a newer animabot still reads, while the config's ``[render]``, which nests it, still refuses
one); its counts are :data:`Whole` (JSON's ``12.0`` is 12 when validated with :data:`FROM_JSON`) and
its numbers :data:`Number` (finite wherever the schema is used); and its wording names fields as
the bot's options and words a choice as ``unknown motion 'spin'; choose one of: ...``.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin

from pydantic import BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, ValidationInfo
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

SCHEMA = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)

Loc = tuple[str | int, ...]

# -- the values of a request (engine.request.params): what a member, a file or a stored row sends ---
# A request is validated from Python values (the bot's options, the command line's flags) or from
# JSON (a recipe in a file, the Remix form, a stored row): ``validate_python(data, context=FROM_JSON)``
# says the latter, where a whole number may arrive written as 12.0.
FROM_JSON = {"from_json": True}


def _whole_number(value: Any, info: ValidationInfo) -> Any:
    """An ``int`` (never a ``bool``), or from JSON a float that is whole: ``12.0`` is 12, ``2.5`` is refused."""
    if isinstance(value, float) and value.is_integer() and (info.context or {}).get("from_json"):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


Whole = Annotated[StrictInt, BeforeValidator(_whole_number)]
"""A count: frames, steps, a size, a seed (a float, text or true/false is refused in one sentence)."""
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
"""A finite number (an int is taken as its float; text, true/false, nan and inf are refused)."""


class Wording:
    """How sentences name places; the defaults suit a JSON object (``frames``, ``loras.0``)."""

    mapping = "an object"  # what a nested group of keys is called

    def name(self, loc: Loc) -> str:
        """The value at ``loc`` (``()`` is the whole input)."""
        return ".".join(map(str, loc)) or "the input"

    def unknown(self, loc: Loc, value: Any) -> str:
        """The opening words for the unknown key ``loc[-1]`` (given ``value``)."""
        return f"unknown key {loc[-1]}" + (f" in {self.name(loc[:-1])}" if loc[:-1] else "")

    def suggestion(self, loc: Loc, name: str) -> str:
        """How the valid ``name`` that ``loc[-1]`` should probably be is shown."""
        return name

    def hint(self, loc: Loc, names: list[str]) -> str:
        """What follows the unknown key ``loc[-1]``: the closest of ``names`` (the valid ones), else all."""
        close = closest(str(loc[-1]), names)
        if close:
            return f"did you mean {self.suggestion(loc, close)}?"
        return "the valid ones are " + ", ".join(self.suggestion(loc, name) for name in names) + "."

    def own(self, loc: Loc, sentence: str) -> str:
        """The sentence of a check that words its own (:func:`sentence_error`), placed at ``loc``."""
        return f"{self.name(loc)}: {sentence}" if loc else sentence

    def choice(self, loc: Loc, value: Any, choices: list[str]) -> str | None:
        """The whole sentence for ``value``, which is none of ``choices`` (a ``Literal``); None: the
        usual ``NAME must be 'a' or 'b', got VALUE.``"""
        return None


def closest(name: str, names) -> str | None:
    """The valid name ``name`` was most likely meant to be (None when none is close)."""
    found = difflib.get_close_matches(name, list(names), n=1)
    return found[0] if found else None


# pydantic error type → what the value must be
_MUST = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": 'must be text in quotes, like "this"',
    "path_type": 'must be a path in quotes, like "data"',
    "list_type": "must be a list, like [1, 2]",
    "tuple_type": "must be a list, like [1, 2]",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "is not in the allowed form",
}
_MAPPING_TYPES = {"dict_type", "model_type", "dataclass_type", "dataclass_exact_type", "typed_dict_type"}
_UNKNOWN_TYPES = {"extra_forbidden", "unexpected_keyword_argument"}
_MISSING_TYPES = {"missing", "missing_argument", "missing_keyword_only_argument"}
_RANGE_TYPES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def error_sentences(error: ValidationError, schema: Any, wording: Wording | None = None) -> list[str]:
    """One sentence per error in ``error``, raised when validating against ``schema``, e.g.
    ``[engine] max_batch must be an integer, got 'eight'.`` or
    ``unknown key data_dri at the top of config.toml; did you mean data_dir?``."""
    wording = wording or Wording()
    return [_sentence(detail, schema, wording) for detail in error.errors(include_url=False)]


def _sentence(detail: dict, schema: Any, wording: Wording) -> str:
    kind, value = detail["type"], detail.get("input")
    loc = tuple(part for part in detail["loc"] if part != "[key]")
    if kind in _UNKNOWN_TYPES:
        return f"{wording.unknown(loc, value)}; {wording.hint(loc, list(field_types(annotation_at(schema, loc[:-1]))))}"
    if kind == "sentence":  # a check that words its own sentence (raise sentence_error(...))
        return wording.own(loc, detail["ctx"]["sentence"])
    if kind in _MISSING_TYPES:
        return f"{wording.name(loc[:-1])} needs {loc[-1]}."
    if kind in _MAPPING_TYPES:
        must = f"must be {wording.mapping}"
    elif kind in _RANGE_TYPES:
        must = "must be " + _range(annotation_at(schema, loc), kind, detail["ctx"])
    elif kind == "literal_error":
        choices = [str(arg) for arg in get_args(unwrap(annotation_at(schema, loc))[0])]
        own = wording.choice(loc, value, choices)
        if own is not None:
            return own
        must = f"must be {detail['ctx']['expected']}"
    elif kind == "string_too_long":
        must = f"must be at most {detail['ctx']['max_length']} characters"
    elif kind == "too_long":
        must = f"must hold at most {detail['ctx']['max_length']} items"
    elif kind == "too_short":
        must = f"must hold at least {detail['ctx']['min_length']} items"
    elif kind in ("value_error", "assertion_error"):
        must = str(detail["ctx"]["error"])  # our validators raise ValueError("must be ...")
    else:
        must = _MUST.get(kind) or detail["msg"][:1].lower() + detail["msg"][1:]
    return f"{wording.name(loc)} {must}, got {shown_value(value)}."


def _range(annotation: Any, kind: str, ctx: dict) -> str:
    """``between 1 and 240`` when the field has both bounds, else the one broken (``at least 0``)."""
    bounds = _bounds(annotation)
    if "ge" in bounds and "le" in bounds:
        return f"between {_number(bounds['ge'])} and {_number(bounds['le'])}"
    word, key = {
        "greater_than": ("above", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("below", "lt"),
        "less_than_equal": ("at most", "le"),
    }[kind]
    return f"{word} {ctx[key]}"


def sentence_error(text: str) -> PydanticCustomError:
    """An error whose text is the whole sentence ``text`` (for a check that words its own, like
    ``RenderParams.validate``); :func:`error_sentences` puts the place before it."""
    return PydanticCustomError("sentence", "{sentence}", {"sentence": text})


def shown_value(value: Any) -> str:
    """A value as a person wrote it: text quoted, true/false, at most 60 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table of " + ", ".join(map(str, value)) if value else "an empty table"
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300 digits
        return "a number too long to show"
    return text if len(text) <= 60 else text[:57] + "..."


# -- reading a schema: the names at a place and what each allows ------------------------------------
def unwrap(annotation: Any) -> tuple[Any, list]:
    """``Annotated[int, Field(ge=1)] | None`` → ``(int, [the metadata])``: the type a value is checked as."""
    metadata: list = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            metadata += annotation.__metadata__
            annotation = get_args(annotation)[0]
        elif origin in (Required, NotRequired):
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            kept = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(kept) != 1:
                return annotation, metadata
            annotation = kept[0]
        else:
            return annotation, metadata


def field_types(annotation: Any) -> dict[str, Any]:
    """The keys a dataclass, pydantic model or TypedDict takes, each with its annotation (a pydantic
    field's ``FieldInfo`` in its ``Annotated`` metadata); {} for any other type."""
    annotation, _ = unwrap(annotation)
    fields = getattr(annotation, "__pydantic_fields__", None)  # a pydantic model or dataclass
    if fields is not None:
        return {name: Annotated[info.annotation, info] for name, info in fields.items()}
    if dataclasses.is_dataclass(annotation) or is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        if dataclasses.is_dataclass(annotation):
            return {f.name: hints[f.name] for f in dataclasses.fields(annotation)}
        return hints
    return {}


def description(annotation: Any) -> str:
    """A field's one-line description ("" when it has none)."""
    return next((m.description for m in unwrap(annotation)[1] if getattr(m, "description", None)), "")


def annotation_at(schema: Any, loc: Loc) -> Any:
    """The annotation of the value at ``loc`` inside ``schema`` (None where the schema says nothing)."""
    annotation = schema
    for part in loc:
        fields = field_types(annotation)
        if fields:
            annotation = fields.get(str(part))
            continue
        inner, _ = unwrap(annotation)
        args = get_args(inner)
        if get_origin(inner) in (dict, Mapping) and len(args) == 2:
            annotation = args[1]
        elif get_origin(inner) is tuple and len(args) > 1 and args[-1] is not Ellipsis:
            annotation = args[part] if isinstance(part, int) and part < len(args) else None  # a fixed (a, b) pair
        elif get_origin(inner) in (list, tuple) and args:
            annotation = args[0]
        else:
            return None
    return annotation


def allowed(annotation: Any) -> str:
    """What a field accepts, in words: ``1 to 240``, ``auto, float16 or float32``, ``true or false``;
    "" when its type says it all (text, a path)."""
    inner, _ = unwrap(annotation)
    if get_origin(inner) is Literal:
        return _either([str(arg) for arg in get_args(inner)])
    if inner is bool:
        return "true or false"
    bounds = _bounds(annotation)
    if "ge" in bounds and "le" in bounds:
        return f"{_number(bounds['ge'])} to {_number(bounds['le'])}"
    words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
    return " and ".join(f"{words[key]} {_number(value)}" for key, value in bounds.items())


def _number(value: float) -> str:
    """A bound as written: ``0.95``, ``-2`` for -2.0, and an int in full (``4294967295``, not ``4.29497e+09``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds(annotation: Any) -> dict[str, float]:
    """The ``ge``/``gt``/``le``/``lt`` bounds a field declares."""
    found = {}
    for item in _constraints(annotation):
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return found


def _constraints(annotation: Any) -> list:
    """The metadata of a field, with that of each ``FieldInfo`` in it spread out (``Ge(1)``, ``Strict()``)."""
    _, metadata = unwrap(annotation)
    return [inner for item in metadata for inner in (item.metadata if isinstance(item, FieldInfo) else [item])]


def from_text(text: str, annotation: Any) -> Any:
    """A value for ``annotation`` from text a person typed outside a file (an environment variable):
    text as it is for a text or path field; else read as a TOML value (``4``, ``true``, ``[1, 2]``,
    or ``1,2`` for a list). Unreadable text stays text, for the schema to refuse with its sentence."""
    kind, _ = unwrap(annotation)
    if kind in (str, Path) or get_origin(kind) is Literal:
        return text
    listed = f"[{text}]" if get_origin(kind) in (tuple, list) and not text.lstrip().startswith("[") else text
    try:
        return tomllib.loads(f"value = {listed}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

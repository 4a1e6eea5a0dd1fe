"""config.example.toml is what hosts copy: it loads, shows the defaults, and documents every key of
the schema (engine/config.py) with the schema's own description and allowed values."""

import dataclasses
import re
from pathlib import Path

import pytest

from engine.config import SECTIONS, Config, LoraTable, ModelTable, load_config
from engine.request import params
from engine.request.validation import allowed, description, field_types

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"

_HEADING = re.compile(r"^#?\s*\[([\w.]+)\](.*)$")
_KEY = re.compile(r"^#?\s*([a-z_]+)\s*=\s*(.*)$")
# [render] keys a host has no reason to set: the prompt and the picture come with each request.
PER_REQUEST = {"prompt", "image_key"}


def _example() -> dict[tuple[str, str], str]:
    """(section, key) → the comments that document it (the lines just above and its own), for every
    key the example sets or shows commented out; ``[models.dreamy]`` counts as section ``models``,
    and a heading's comments are kept under key ``""``."""
    documented: dict[tuple[str, str], str] = {}
    section, above = "", []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        heading, key = _HEADING.match(line), _KEY.match(line)
        if heading or key:
            if heading:
                section, name, rest = heading.group(1).split(".")[0], "", heading.group(2)
            else:
                name, rest = key.group(1), key.group(2)
            own = rest.split("#", 1)[1] if "#" in rest else rest if heading else ""
            text = " ".join([*above, own.strip(" :")])
            documented[section, name] = documented.get((section, name), "") + " " + " ".join(text.split())
            above = []
        elif line.startswith("#"):
            above.append(line.lstrip("# ").strip())
        else:
            above = []
    return documented


def _described(annotation) -> str:
    """What the example must say about a key: its description, then what it allows in brackets."""
    assert description(annotation), "every key of the schema has a description"
    return f"{description(annotation)} ({allowed(annotation)})" if allowed(annotation) else description(annotation)


def _schema() -> dict[str, dict]:
    """section → {key: annotation}, "" being the top of the file."""
    top = {k: a for k, a in field_types(Config).items() if k not in SECTIONS and k not in ("models", "loras")}
    tables = {"models": field_types(ModelTable), "loras": field_types(LoraTable)}
    return {"": top, **{name: field_types(kind) for name, kind in SECTIONS.items()}, **tables}


def test_the_example_loads_and_shows_the_built_in_defaults():
    config = load_config(EXAMPLE, environ={})
    default = Config()
    # the one value the example suggests over the built-in default
    assert config.render == dataclasses.replace(default.render, negative_prompt="blurry, low quality, deformed")
    assert dataclasses.replace(config, render=default.render) == default


@pytest.mark.parametrize("section", sorted(_schema()))
def test_the_example_names_every_key_with_its_description_and_allowed_values(section):
    documented = _example()
    keys = _schema()[section]
    if section == "render":
        missing = set(keys) - PER_REQUEST - {key for s, key in documented if s == "render"}
        assert not missing, f"[render] keys missing from the example: {sorted(missing)}"
        return
    for key, annotation in keys.items():
        assert (section, key) in documented, f"[{section}] {key} is missing from the example"
        expected = _described(annotation)
        assert expected in documented[section, key], f"[{section}] {key}: the example should say {expected!r}"


def test_the_example_describes_each_section_as_the_schema_does():
    documented = _example()
    for name, kind in [*SECTIONS.items(), ("models", ModelTable), ("loras", LoraTable)]:
        if name == "render":
            continue
        words = kind.__doc__.split(": ", 1)[1].rstrip(".")
        assert words in documented[name, ""], f"[{name}]: the example should say {words!r}"


def test_the_render_keys_in_the_example_name_what_they_allow():
    documented = _example()
    choices = {
        "motion": params.MOTIONS,
        "scheduler": params.SCHEDULERS,
        "control": params.CONTROLS,
        "loop": params.LOOPS,
        "smooth": params.SMOOTH_FACTORS,
        "format": params.FORMATS,
    }
    for key, values in choices.items():
        assert all(str(value) in documented["render", key] for value in values), f"[render] {key}"
    assert f"(1 to {params.MAX_FRAMES})" in documented["render", "frames"]
    assert f"64 to {params.MAX_SIDE}" in documented["render", "width"]


def test_uncommenting_the_example_tables_adds_them_and_captures_no_other_key(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# [models.NAME]")
    tables = re.sub(r"^# (\[(models|loras)\.(?!NAME)\w+\]|[a-z_]+ = )", r"\1", text[start:], flags=re.MULTILINE)
    path = tmp_path / "config.toml"
    path.write_text(text[:start] + tables, encoding="utf-8")
    config = load_config(path, environ={})
    assert list(config.catalog.models) == ["default", "dreamy", "realistic"]
    assert config.catalog.model("dreamy").vae == "stabilityai/sd-vae-ft-mse"
    assert config.catalog.model("realistic").single_file
    assert config.catalog.lora("pixel").weight == 0.8 and config.catalog.lora("pixel").trigger == "pixel art"
    assert dataclasses.replace(config, models={}, loras={}) == load_config(EXAMPLE, environ={})

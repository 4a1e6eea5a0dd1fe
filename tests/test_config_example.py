"""config.example.toml is what hosts copy: it must load, and it documents every setting."""

import dataclasses
import re
import tomllib
from pathlib import Path

from engine.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_the_example_config_loads_with_the_values_it_shows():
    config = load_config(EXAMPLE)
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section in ("engine", "render", "limits", "store"):
        for key, value in raw[section].items():
            assert getattr(getattr(config, section), key) == value, f"[{section}] {key}"


def test_the_example_config_names_every_setting_a_host_can_change():
    text = EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    for section in ("engine", "limits", "discord", "store"):
        settings = {f.name for f in dataclasses.fields(type(getattr(Config(), section)))}
        assert settings <= named, f"[{section}] settings missing from the example: {sorted(settings - named)}"

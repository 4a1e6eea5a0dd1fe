"""One request schema for every way a render enters (issue 20): whichever way a hostile value comes
in, it is refused in one sentence naming the field, and an unknown key is ignored.

The ways in, each as the code that takes it calls the schema: Python values (a slash command's
options, a context menu's form, the command line's flags, a button re-queuing a stored job) through
``RenderParams.validate``; JSON a member or a file sent (the Remix form's settings, a recipe in a
video) through ``RenderParams.parse`` and ``recipe_params``; a stored row through ``from_dict`` and
then ``validate`` when its job runs; the host's ``[render]`` section through ``load_config``.
"""

import dataclasses
import json
import math

import pytest

from engine.config import Config, load_config
from engine.errors import UserError
from engine.request.params import MAX_PROMPT, RenderParams
from engine.request.recipe import PICTURE_NOT_IN_FILE, build_recipe, recipe_params
from engine.request.validation import description, field_types

GOOD = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1)


def _options(change: dict) -> RenderParams:
    """/animate, the context menus and ``animabot render``: the [render] defaults with the given values."""
    return Config().defaults(**{"prompt": GOOD.prompt, **dataclasses.asdict(GOOD), **change}).validate()


def _remix_form(change: dict) -> RenderParams:
    """The Remix form: its settings are JSON the member edited."""
    return RenderParams.parse(json.loads(json.dumps({**GOOD.to_dict(), **change})))


def _recipe(change: dict) -> RenderParams:
    """A recipe in a posted or local file (Remix from the context menu, ``animabot render --from``)."""
    recipe = build_recipe(GOOD, model=None, controlnet=None)
    recipe["params"].update(change)
    return recipe_params(json.loads(json.dumps(recipe)))


def _stored_row(change: dict) -> RenderParams:
    """A job's row read back (a button re-queues it; the worker validates it before it renders)."""
    return RenderParams.from_dict(json.loads(json.dumps({**GOOD.to_dict(), **change}))).validate()


ENTRIES = [_options, _remix_form, _recipe, _stored_row]

HOSTILE = [
    ({"steps": 2.5}, "steps must be a whole number, got 2.5."),
    ({"steps": "12"}, "steps must be a whole number, got '12'."),
    ({"frames": [16]}, "frames must be a whole number, got [16]."),
    ({"frames": True}, "frames must be a whole number, got true."),
    ({"frames": 500}, "frames must be between 1 and 240, got 500."),
    ({"seed": 2**40}, "seed must be between 0 and 4294967295, got 1099511627776."),
    ({"guidance": "7.5"}, "guidance must be a number, got '7.5'."),
    ({"guidance": True}, "guidance must be a number, got true."),
    ({"prompt": "a" * 1_000_000}, f"prompt must be at most {MAX_PROMPT} characters, got '{'a' * 56}...."),
    ({"negative_prompt": 5}, 'negative prompt must be text in quotes, like "this", got 5.'),
    (
        {"motion": "spin"},
        "unknown motion 'spin'; choose one of: none, zoom-in, zoom-out, pan-left, pan-right, "
        "pan-up, pan-down, rotate-cw, rotate-ccw.",
    ),  # fmt: skip
    ({"loop": ["none"]}, "loop must be one of: none, pingpong, seamless, got ['none']."),
    ({"loras": [["pixel", 0.5]] * 1000}, "At most 4 LoRAs fit in one render, got 1000."),
    ({"loras": [["pixel", "heavy"]]}, "the weight of LoRA pixel must be a number, got 'heavy'."),
    ({"loras": [["pixel", 9]]}, "the weight of LoRA pixel must be between -2 and 2, got 9."),
    (
        {"loras": [["\x1b[2J", 1]]},
        "the name of LoRA #1 must be 1 to 40 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, got '\\x1b[2J'.",
    ),  # fmt: skip
    ({"loras": [["pixel"]]}, "LoRA pixel must be a pair of a name and a weight, like [\"pixel\", 0.8], got ['pixel']."),
    ({"model": "x" * 10_000}, f"model must be at most 300 characters, got '{'x' * 56}...."),
    ({"model": "evil\x1b]0;owned\x07"}, "model must not hold control characters, got 'evil\\x1b]0;owned\\x07'."),
    ({"image_key": "../../etc/passwd"}, "image key must be a sha256 hex digest, got '../../etc/passwd'."),
    ({"smooth": 3}, "smooth must be one of 1, 2, 4, got 3."),
    ({"canny_low": 300}, "Canny thresholds must satisfy 0 <= low < high <= 1000, got 300/200."),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.__name__.strip("_"))
@pytest.mark.parametrize(("change", "sentence"), HOSTILE, ids=lambda value: str(value)[:40])
def test_a_hostile_value_is_one_sentence_naming_its_field_whichever_way_it_enters(entry, change, sentence):
    if entry is _recipe and "image_key" in change:  # a file's key is never a fetch key: it is replaced, not read
        assert entry(change).image_key == PICTURE_NOT_IN_FILE
        return
    with pytest.raises(UserError) as err:
        entry(change)
    assert str(err.value) == sentence


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.__name__.strip("_"))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_guidance_is_a_finite_number_whichever_way_it_enters(entry, value):
    # JSON has no nan or inf: Python's json writes and reads them, as a crafted file may.
    with pytest.raises(UserError, match=r"^guidance must be a finite number, got -?(nan|inf)\.$"):
        entry({"guidance": value})


@pytest.mark.parametrize("entry", ENTRIES[1:], ids=lambda entry: entry.__name__.strip("_"))
def test_an_unknown_key_is_ignored_whichever_way_json_enters(entry):
    params = entry({"sampler_of_the_future": "fast", "__class__": "x"})
    assert params == GOOD and not hasattr(params, "sampler_of_the_future")


@pytest.mark.parametrize("entry", [_remix_form, _recipe, _stored_row], ids=lambda entry: entry.__name__.strip("_"))
def test_json_may_write_a_whole_number_as_a_float(entry):
    params = entry({"steps": 2.0, "seed": 7.0, "loras": [["pixel", 1]]})
    assert (params.steps, type(params.steps), params.seed, params.loras) == (2, int, 7, (("pixel", 1.0),))
    assert hash(params) == hash(dataclasses.replace(GOOD, seed=7, loras=(("pixel", 1.0),)))


def test_the_first_mistake_is_the_one_sentence_in_field_order():
    with pytest.raises(UserError) as err:
        RenderParams.parse({"prompt": "a cat", "steps": 2.5, "frames": 0, "guidance": math.nan})
    assert str(err.value) == "frames must be between 1 and 240, got 0."


def test_what_is_not_a_json_object_is_refused_in_one_sentence():
    for data, sentence in [
        (5, 'the settings must be a JSON object like {"frames": 16}, got 5.'),
        ({"frames": 3}, "the settings needs prompt."),
    ]:
        with pytest.raises(UserError) as err:
            RenderParams.parse(data)
        assert str(err.value) == sentence


def test_a_stored_row_the_schema_refuses_is_read_and_fails_only_when_its_job_runs():
    # A row written past the checks (an older animabot, a hand edit) must not break every read of the queue.
    row = {**GOOD.to_dict(), "steps": 2.5, "loras": [["pixel", "heavy"]], "frames": 3.0}
    read = RenderParams.from_dict(row)
    assert (read.steps, read.frames, read.loras) == (2.5, 3, (("pixel", "heavy"),))
    hash(read)  # still a frozen, hashable dataclass
    with pytest.raises(UserError, match=r"^steps must be a whole number, got 2\.5\.$"):
        read.validate()


def test_the_config_render_section_nests_the_same_schema_yet_refuses_an_unknown_key(tmp_path):
    path = tmp_path / "config.toml"
    for text, line in [
        ("[render]\nguidance = nan\n", "[render] guidance must be a finite number, got nan."),
        ('[render]\nloras = [["pixel", "heavy"]]\n', "[render] loras[0][1] must be a number, got 'heavy'."),
        ("[render]\nshceduler = 1\n", "unknown key shceduler in [render]; did you mean scheduler?"),
    ]:
        path.write_text(text)
        with pytest.raises(UserError) as err:
            load_config(path, environ={})
        assert str(err.value) == line


def test_each_field_is_declared_once_with_its_description_and_the_dataclass_stays_frozen_and_hashable():
    fields = field_types(RenderParams)
    assert set(fields) == {field.name for field in dataclasses.fields(RenderParams)}
    assert [name for name, annotation in fields.items() if not description(annotation)] == []
    checked = GOOD.validate()
    assert checked == GOOD and hash(checked) == hash(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.steps = 3  # type: ignore[misc]


def test_motion_with_loras_is_refused_before_it_queues():
    with pytest.raises(UserError, match="^Coherence motion does not take LoRAs yet; leave out the LoRAs"):
        RenderParams(prompt="a cat", coherence="motion", loras=(("pixel", 0.5),)).validate()
    assert RenderParams(prompt="a cat", coherence="cross-frame", loras=(("pixel", 0.5),)).validate()


def test_motion_with_a_loop_is_refused_before_it_queues():
    with pytest.raises(UserError, match="^Coherence motion does not loop clips yet"):
        RenderParams(prompt="a cat", coherence="motion", loop="pingpong").validate()

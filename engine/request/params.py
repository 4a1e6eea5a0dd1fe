"""The parameters of one render: a frozen dataclass with no torch import, and the one schema of a request.

The bot side (possibly a process on a machine without a GPU) builds, validates and stores these;
the engine renders them. ``to_dict``/``from_dict`` give the JSON kept in the job store.

Every way a render enters is checked by the same declaration, the fields below (issue 20): each
field's type, range and description is pydantic's (``engine.request.validation``), the rules between
fields are :func:`_whole_request`, and a mistake is one sentence naming the field as the bot's options
do (``frames must be between 1 and 240, got 500.``). The ways in:

- Python values (a slash command's options, a button's stored job, the command line's flags, a
  context menu's form) are built as ``RenderParams(...)`` and checked with :meth:`RenderParams.validate`;
- JSON a member or a file sent (a recipe in a video, the Remix form's settings) with
  :meth:`RenderParams.parse`; a stored row with :meth:`RenderParams.from_dict`;
- the ``[render]`` section of the host's config nests the same schema (``engine.config``).

Integers are integers (JSON's ``12.0`` is 12, ``2.5`` is refused), numbers are finite, text is
bounded, an unknown key is ignored (a recipe of a newer animabot still reads). The dataclass stays a
plain frozen one (hashable, ``dataclasses.replace`` works, building one checks nothing): the check is
the call to ``validate``/``parse``: one pydantic-core pass, about 0.1 ms on a busy 2-core CPU
(``bench/request_schema.py``; the hand-written checks before it took about a third of that).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictStr, TypeAdapter, ValidationError
from pydantic_core import core_schema

from engine.errors import UserError
from engine.request.catalog import DEFAULT_MODEL, LORA_WEIGHT_RANGE, MAX_LORAS, NAME, NAME_RULE
from engine.request.validation import (
    FROM_JSON,
    Number,
    Whole,
    Wording,
    error_sentences,
    field_types,
    sentence_error,
    shown_value,
    unwrap,
)

Motion = Literal[
    "none", "zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down", "rotate-cw", "rotate-ccw"
]
Scheduler = Literal["dpm++", "pndm", "euler", "unipc"]
Control = Literal["canny", "depth", "pose"]  # each has its own ControlNet; depth and pose an annotator model
# -- clips people share (issue 12): loops, smoothing, formats ---------------------------------------
Loop = Literal["none", "pingpong", "seamless"]
Format = Literal["mp4", "gif", "webp"]  # engine.video.formats.FORMATS
# coherent motion (issue 24): off, cross-frame attention (engine.render.coherence), a motion adapter
Coherence = Literal["off", "cross-frame", "motion"]

MOTIONS, SCHEDULERS, CONTROLS = get_args(Motion), get_args(Scheduler), get_args(Control)
LOOPS, FORMATS, COHERENCES = get_args(Loop), get_args(Format), get_args(Coherence)
SMOOTH_FACTORS = (1, 2, 4)  # the same as engine.video.interpolate.SMOOTH_FACTORS (no import: no OpenCV here)

MAX_FRAMES = 240
MAX_STEPS = 150
MAX_SIDE = 2048
MAX_FPS = 60
MAX_SEED = 2**32 - 1
# A prompt's length: twice what the bot's prompt option and Remix form take (1000), so a command
# line's keyframe prompt fits; far past what the text encoder reads (77 tokens a keyframe).
MAX_PROMPT = 2000
MAX_MODEL = 300  # a model's name: a catalog name (at most 40), or on the command line a hub id or a path

_KEYFRAME = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$", re.DOTALL)
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


# -- the checks of single fields (each raises ValueError("must ...") or words its own sentence) ------
def _multiple_of_8(side: int) -> int:
    if side % 8:
        raise ValueError("must be a multiple of 8")
    return side


def _smooth_factor(factor: int) -> int:
    if factor not in SMOOTH_FACTORS:
        raise ValueError(f"must be one of {', '.join(map(str, SMOOTH_FACTORS))}")
    return factor


def _model_name(name: str) -> str:
    if not name.strip():
        raise sentence_error("The model name is empty; leave it out for the default model.")
    if _CONTROL_CHARACTERS.search(name):
        raise ValueError("must not hold control characters")
    return name


def _lora_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(f"must be {NAME_RULE}")
    return name


def _lora_pair(pair: Any) -> Any:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError('must be a pair of a name and a weight, like ["pixel", 0.8]')
    return pair


def _few_loras(loras: Any) -> Any:
    """Counted before each LoRA is read: a list of a million is refused at once."""
    if isinstance(loras, (list, tuple)) and len(loras) > MAX_LORAS:
        raise sentence_error(f"At most {MAX_LORAS} LoRAs fit in one render, got {len(loras)}.")
    return loras


def _sha256_hex(key: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError("must be a sha256 hex digest")
    return key


Text = Annotated[StrictStr, Field(max_length=MAX_PROMPT)]
Side = Annotated[Whole, AfterValidator(_multiple_of_8), Field(ge=64, le=MAX_SIDE)]
LoraName = Annotated[StrictStr, Field(max_length=40), AfterValidator(_lora_name)]
LoraWeight = Annotated[Number, Field(ge=LORA_WEIGHT_RANGE[0], le=LORA_WEIGHT_RANGE[1])]
LoraPair = Annotated[tuple[LoraName, LoraWeight], BeforeValidator(_lora_pair)]


@dataclass(frozen=True)
class RenderParams:
    prompt: Annotated[Text, Field(description='what the video shows; keyframes read "0: a cat | 24: a tiger"')]
    negative_prompt: Annotated[Text, Field(description="what the frames should not show")] = ""
    frames: Annotated[Whole, Field(ge=1, le=MAX_FRAMES, description="frames rendered")] = 16
    fps: Annotated[Whole, Field(ge=1, le=MAX_FPS, description="frames per second")] = 8
    seed: Annotated[Whole | None, Field(ge=0, le=MAX_SEED, description="a fixed seed; None draws one")] = None
    steps: Annotated[Whole, Field(ge=1, le=MAX_STEPS, description="denoising steps per frame")] = 12
    guidance: Annotated[Number, Field(ge=0, le=30, description="how closely frames follow the prompt")] = 7.5
    strength: Annotated[Number, Field(ge=0, le=0.95, description="img2img from the previous frame")] = 0.6
    control_scale: Annotated[Number, Field(ge=0, le=3, description="how strongly the control map holds a frame")] = 1.2
    motion: Annotated[Motion, Field(description="how the camera moves")] = "none"
    motion_amount: Annotated[Number, Field(ge=0, le=0.5, description="how far the camera moves per frame")] = 0.03
    width: Annotated[Side, Field(description="in pixels, a multiple of 8")] = 512
    height: Annotated[Side, Field(description="in pixels, a multiple of 8")] = 512
    scheduler: Annotated[Scheduler, Field(description="the sampler")] = "dpm++"
    control: Annotated[Control, Field(description="what holds each frame to the previous one")] = "canny"
    canny_low: Annotated[Whole, Field(ge=0, le=1000, description="the lower Canny threshold")] = 100
    canny_high: Annotated[Whole, Field(ge=0, le=1000, description="the upper Canny threshold")] = 200
    color_coherence: Annotated[StrictBool, Field(description="keep colours close to the first frame's")] = True
    # Which weights draw it: a configured model name, and (LoRA name, weight) pairs (engine.request.catalog).
    model: Annotated[
        StrictStr, Field(max_length=MAX_MODEL, description="a configured model's name"), AfterValidator(_model_name)
    ] = DEFAULT_MODEL
    loras: Annotated[
        tuple[LoraPair, ...], BeforeValidator(_few_loras), Field(description="configured LoRAs with their weights")
    ] = ()
    # -- starting from a picture (engine.request.picture fits it; the queue keeps it by this key) --
    # sha256 of the fitted PNG: frame 0 is that picture; None: from text
    image_key: (
        Annotated[StrictStr, Field(max_length=64, description="the start picture's key"), AfterValidator(_sha256_hex)]
        | None
    ) = None
    # 0: frame 0 is the picture exactly; above 0: it is re-drawn (img2img)
    image_strength: Annotated[Number, Field(ge=0, le=1, description="how far the picture is re-drawn")] = 0.0
    # -- clips people share (issue 12) --
    # none | pingpong (played forward then back) | seamless (the last frames steer to frame 0)
    loop: Annotated[Loop, Field(description="how the clip loops")] = "none"
    # in-between frames by optical flow: the output has (N-1)*smooth+1 frames at fps*smooth
    smooth: Annotated[Whole, AfterValidator(_smooth_factor), Field(description="in-between frames")] = 1
    format: Annotated[Format, Field(description="mp4, gif or webp")] = "mp4"
    # off | cross-frame (each frame also attends to frame 0 and the previous one) | motion (a motion adapter)
    coherence: Annotated[Coherence, Field(description="how frames hold together")] = "off"

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler) -> core_schema.CoreSchema:
        """The fields' schema, then the rules between fields (wherever the schema is used)."""
        return core_schema.no_info_after_validator_function(_whole_request, handler(source))

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> RenderParams:
        """These parameters, checked: ``UserError`` naming the first bad value (a float where a whole
        number goes, even 3.0: Python callers pass ints), else the same parameters."""
        return _checked(vars(self), context=None)

    @classmethod
    def parse(cls, data: Any) -> RenderParams:
        """The parameters a JSON object holds (a recipe in a file, the Remix form's settings), checked:
        ``UserError`` naming the first bad value. Unknown keys are ignored; ``12.0`` reads as 12."""
        return _checked(data, context=FROM_JSON)

    # -- derived ------------------------------------------------------------------------------
    def with_seed(self, seed: int | None = None) -> RenderParams:
        """A copy with a concrete seed: the given one, or a fresh random one."""
        return dataclasses.replace(self, seed=random.randint(0, MAX_SEED) if seed is None else seed)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def batch_key(self) -> str:
        """Jobs share a batch (one UNet call per step) only when their keys are equal.

        Anything that changes which weights or input shapes a denoising step needs belongs here:
        the size, the control type (each control has its own ControlNet and annotator, so jobs of
        different controls never share a batch), coherence motion (its jobs draw windows, batch only
        with each other), and the model and LoRA set."""
        motion = " motion" if self.coherence == "motion" else ""  # windows of frames: not the frame-by-frame step
        return " ".join((self.size, self.control)) + motion + self._weights_key()

    def _weights_key(self) -> str:
        """The model and the LoRA set with weights (a LoRA's scale is per module, not per batch row);
        empty for the default model without LoRAs."""
        if self.model == DEFAULT_MODEL and not self.loras:
            return ""
        loras = ",".join(f"{name}:{weight:g}" for name, weight in sorted(self.loras))
        return f" {self.model}" + (f" +{loras}" if loras else "")

    def summary(self) -> str:
        """One line of the settings, for messages and logs."""
        parts = [
            f"seed {self.seed}",
            f"{self.frames} frames @ {self.fps} fps",
            self.size,
            f"{self.steps} steps",
            f"guidance {self.guidance:g}",
            f"control {self.control_scale:g}",
        ]
        if self.strength:
            parts.append(f"strength {self.strength:g}")
        if self.motion != "none":
            parts.append(f"motion {self.motion}")
        if self.model != DEFAULT_MODEL:
            parts.append(f"model {self.model}")
        if self.loras:
            parts.append("LoRA " + ", ".join(f"{name}:{weight:g}" for name, weight in self.loras))
        parts += self._picture_summary()
        parts.extend(self._clip_summary())
        return ", ".join(parts)

    def _picture_summary(self) -> list[str]:
        """The summary's words for the control type and a starting picture (never the picture itself)."""
        parts = [f"{self.control} control"] if self.control != "canny" else []
        if self.image_key is not None:
            parts.append(
                f"from a picture (strength {self.image_strength:g})" if self.image_strength else "from a picture"
            )
        return parts

    @property
    def output_fps(self) -> int:
        """The rate the clip plays at: the rendered fps times the smoothing factor."""
        return self.fps * self.smooth

    def _clip_summary(self) -> list[str]:
        parts = []
        if self.loop != "none":
            parts.append(f"loop {self.loop}")
        if self.smooth != 1:
            parts.append(f"smooth ×{self.smooth} ({self.output_fps} fps)")
        if self.format != "mp4":
            parts.append(self.format.upper())
        if self.coherence != "off":
            parts.append(f"coherence {self.coherence}")
        return parts

    # -- storage ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderParams:
        """A stored row's parameters (``to_dict``'s JSON) back, read by the schema as :meth:`parse`
        reads them. A row the schema refuses (stored before a check existed, or written past the
        checks) is kept as read, never raised here: every read of the queue would fail on it. Its
        job fails alone when ``validate`` refuses it, with that value's sentence."""
        try:
            return _schema().validate_python(data, context=FROM_JSON)
        except ValidationError:
            return cls(**{name: _as_read(name, value) for name, value in data.items() if name in _FIELDS})


_FIELDS = {field.name for field in dataclasses.fields(RenderParams)}
_WHOLE_FIELDS = {name for name, annotation in field_types(RenderParams).items() if unwrap(annotation)[0] is int}


def _as_read(name: str, value: Any) -> Any:
    """A stored value the schema refused, kept for ``validate``: JSON's 12.0 as 12 in a whole-number
    field, the LoRA pairs as a tuple of tuples (as the dataclass holds them); the rest as JSON wrote it."""
    if name in _WHOLE_FIELDS and isinstance(value, float) and value.is_integer():
        return int(value)
    if name == "loras" and isinstance(value, list):
        return tuple(tuple(pair) if isinstance(pair, list) and len(pair) == 2 else pair for pair in value)
    return value


def _whole_request(params: RenderParams) -> RenderParams:
    """The rules between fields, each its own sentence (each field is already of its type and range)."""
    if not params.prompt.strip():
        raise sentence_error("The prompt is empty: describe what the video should show.")
    if params.canny_low >= params.canny_high:
        raise sentence_error(
            f"Canny thresholds must satisfy 0 <= low < high <= 1000, got {params.canny_low}/{params.canny_high}."
        )
    if len({name for name, _ in params.loras}) != len(params.loras):
        raise sentence_error("Each LoRA can be named once per render; give one weight per LoRA.")
    if params.coherence == "motion" and params.loras:  # before it queues, not when a worker loads it
        raise sentence_error("Coherence motion does not take LoRAs yet; leave out the LoRAs or pick cross-frame.")
    if params.coherence == "motion" and params.loop != "none":  # engine.render.motion draws no loop
        raise sentence_error("Coherence motion does not loop clips yet; leave loop out or pick cross-frame.")
    if params.image_strength and params.image_key is None:
        raise sentence_error(
            "image strength only applies when starting from a picture; give one, or leave image strength out."
        )
    try:
        keyframes(params.prompt, params.frames)  # a malformed keyframe prompt, or a key past the clip
    except UserError as err:
        raise sentence_error(str(err)) from None
    return params


@functools.cache
def _schema() -> TypeAdapter[RenderParams]:
    """The request schema, built on first use (not at import: a process that never checks a request
    does not pay for building it)."""
    return TypeAdapter(RenderParams)


def _checked(data: Any, context: dict | None) -> RenderParams:
    try:
        return _schema().validate_python(data, context=context)
    except ValidationError as err:
        raise UserError(error_sentences(err, RenderParams, _RequestWording(data))[0]) from None


class _RequestWording(Wording):
    """Places in a request named as the bot's options are: ``frames``, ``canny low``, ``the weight
    of LoRA pixel``; a rule's sentence (the prompt is empty, the Canny thresholds) reads as it is."""

    mapping = 'a JSON object like {"frames": 16}'

    def __init__(self, data: Any) -> None:
        self.data = data

    def name(self, loc) -> str:
        if not loc:
            return "the settings"
        if loc[0] == "loras" and len(loc) > 1:
            lora = f"LoRA {self._lora(loc[1])}"
            return lora if len(loc) == 2 else ("the name of " if loc[2] == 0 else "the weight of ") + lora
        return str(loc[0]).replace("_", " ")

    def _lora(self, index: int) -> str:
        """The name of the LoRA at ``index`` when it reads as one, else its place (``#1``)."""
        try:
            name = self.data["loras"][index][0]
        except (TypeError, KeyError, IndexError):
            name = None
        return name if isinstance(name, str) and NAME.fullmatch(name) else f"#{index + 1}"

    def own(self, loc, sentence: str) -> str:
        return sentence

    def choice(self, loc, value: Any, choices: list[str]) -> str:
        if isinstance(value, str):
            return f"unknown {self.name(loc)} {shown_value(value)}; choose one of: {', '.join(choices)}."
        return f"{self.name(loc)} must be one of: {', '.join(choices)}, got {shown_value(value)}."


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` → ``(512, 768)``; a readable error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"size must look like WIDTHxHEIGHT (e.g. 512x512), got {text!r}.")
    return int(match.group(1)), int(match.group(2))


def keyframes(prompt: str, frames: int | None = None) -> list[tuple[int, str]]:
    """Split ``"0: a cat | 24: a tiger"`` into ``[(0, "a cat"), (24, "a tiger")]``.

    A prompt is keyframes only when every ``|``-separated part starts with a frame number and a
    colon (``N:``); a prompt whose parts have none (``"a cat | oil painting"``) is one prompt, ``|``
    and all, at frame 0, as other Stable Diffusion tools read it. Parts with and without numbers
    mixed are refused: a part that lost its number would otherwise be read as text. One part with
    ``N:`` is a single key. Keys must be increasing; the first key is moved to frame 0 if it starts
    later (the clip needs a prompt there). With ``frames`` (the clip's length), a later key at or past
    the last frame is refused: it would never be shown.
    """
    pieces = prompt.split("|")
    numbered = [_KEYFRAME.match(piece) for piece in pieces]
    if not any(numbered):
        return [(0, prompt.strip())]
    keys: list[tuple[int, str]] = []
    for piece, match in zip(pieces, numbered, strict=True):
        if not match or not match.group(2):
            raise UserError(
                'Keyframe prompts look like "0: a cat | 24: a tiger", a frame number on every part (leave them '
                f"all out for one prompt with a |); could not read {piece.strip()!r}."
            )
        frame, text = int(match.group(1)), match.group(2)
        if keys and frame <= keys[-1][0]:
            raise UserError(f"Keyframes must be in increasing frame order; {frame} comes after {keys[-1][0]}.")
        if keys and frames is not None and frame >= frames:
            raise UserError(
                f"The keyframe at frame {frame} is past the end of the clip, which has {frames} frames "
                f"(0 to {frames - 1}); give more frames or an earlier keyframe."
            )
        keys.append((frame, text))
    keys[0] = (0, keys[0][1])
    return keys

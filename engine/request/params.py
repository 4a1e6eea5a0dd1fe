"""The parameters of one render: a frozen dataclass with no torch import.

The bot side (possibly a process on a machine without a GPU) builds, validates and stores these;
the engine renders them. ``to_dict``/``from_dict`` give the JSON kept in the job store.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass

from engine.errors import UserError
from engine.request.catalog import DEFAULT_MODEL, MAX_LORAS, check_lora_weight

MOTIONS = (
    "none",
    "zoom-in",
    "zoom-out",
    "pan-left",
    "pan-right",
    "pan-up",
    "pan-down",
    "rotate-cw",
    "rotate-ccw",
)
SCHEDULERS = ("dpm++", "pndm", "euler", "unipc")
CONTROLS = ("canny", "depth", "pose")  # each has its own ControlNet; depth and pose an annotator model

# -- clips people share (issue 12): loops, smoothing, formats ---------------------------------------
LOOPS = ("none", "pingpong", "seamless")
SMOOTH_FACTORS = (1, 2, 4)  # the same as engine.video.interpolate.SMOOTH_FACTORS (no import: no OpenCV here)
FORMATS = ("mp4", "gif", "webp")  # engine.video.formats.FORMATS
# -- coherent motion (issue 24): off, cross-frame attention (engine.render.coherence), a motion adapter
COHERENCES = ("off", "cross-frame", "motion")

MAX_FRAMES = 240
MAX_STEPS = 150
MAX_SIDE = 2048
MAX_FPS = 60
MAX_SEED = 2**32 - 1

_KEYFRAME = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class RenderParams:
    prompt: str
    negative_prompt: str = ""
    frames: int = 16
    fps: int = 8
    seed: int | None = None
    steps: int = 12
    guidance: float = 7.5
    strength: float = 0.6
    control_scale: float = 1.2
    motion: str = "none"
    motion_amount: float = 0.03
    width: int = 512
    height: int = 512
    scheduler: str = "dpm++"
    control: str = "canny"
    canny_low: int = 100
    canny_high: int = 200
    color_coherence: bool = True
    # Which weights draw it: a configured model name, and (LoRA name, weight) pairs (engine.request.catalog).
    model: str = DEFAULT_MODEL
    loras: tuple[tuple[str, float], ...] = ()
    # -- starting from a picture (engine.request.picture fits it; the queue keeps it by this key) --
    image_key: str | None = None  # sha256 of the fitted PNG: frame 0 is that picture; None: from text
    image_strength: float = 0.0  # 0: frame 0 is the picture exactly; above 0: it is re-drawn (img2img)
    # -- clips people share (issue 12) --
    loop: str = "none"  # none | pingpong (played forward then back) | seamless (the last frames steer to frame 0)
    smooth: int = 1  # in-between frames by optical flow: the output has (N-1)*smooth+1 frames at fps*smooth
    format: str = "mp4"  # mp4 | gif | webp
    coherence: str = "off"  # off | cross-frame (each frame also attends to frame 0 and the previous one) | motion

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> RenderParams:
        """Raise ``UserError`` naming the first bad value; return self when all is well."""
        if not self.prompt.strip():
            raise UserError("The prompt is empty: describe what the video should show.")
        for name in _WHOLE_FIELDS:  # before the ranges: a job's frame count, steps and sizes are counts
            _whole(name, getattr(self, name))
        _in_range("frames", self.frames, 1, MAX_FRAMES)
        _in_range("fps", self.fps, 1, MAX_FPS)
        _in_range("steps", self.steps, 1, MAX_STEPS)
        _in_range("guidance", self.guidance, 0.0, 30.0)
        _in_range("strength", self.strength, 0.0, 0.95)
        _in_range("control scale", self.control_scale, 0.0, 3.0)
        _in_range("motion amount", self.motion_amount, 0.0, 0.5)
        for name, side in (("width", self.width), ("height", self.height)):
            _in_range(name, side, 64, MAX_SIDE)
            if side % 8:
                raise UserError(f"{name} must be a multiple of 8, got {side}.")
        if self.seed is not None:
            _in_range("seed", self.seed, 0, MAX_SEED)
        _one_of("motion", self.motion, MOTIONS)
        _one_of("scheduler", self.scheduler, SCHEDULERS)
        _one_of("control", self.control, CONTROLS)
        if not 0 <= self.canny_low < self.canny_high <= 1000:
            raise UserError(
                f"Canny thresholds must satisfy 0 <= low < high <= 1000, got {self.canny_low}/{self.canny_high}."
            )
        keyframes(self.prompt)  # raises on a malformed keyframe prompt
        self._validate_weights()
        self._validate_picture()
        self._validate_clip()
        return self

    def _validate_weights(self) -> None:
        """The model and LoRA fields are well formed (whether they are configured is the catalog's check)."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise UserError("The model name is empty; leave it out for the default model.")
        if len(self.loras) > MAX_LORAS:
            raise UserError(f"At most {MAX_LORAS} LoRAs fit in one render, got {len(self.loras)}.")
        for name, weight in self.loras:
            check_lora_weight(name, weight)
        if len({name for name, _ in self.loras}) != len(self.loras):
            raise UserError("Each LoRA can be named once per render; give one weight per LoRA.")

    def _validate_picture(self) -> None:
        _in_range("image strength", self.image_strength, 0.0, 1.0)
        if self.image_strength and self.image_key is None:
            raise UserError(
                "image strength only applies when starting from a picture; give one, or leave image strength out."
            )
        if self.image_key is not None and not re.fullmatch(r"[0-9a-f]{64}", self.image_key):
            raise UserError(f"image key must be a sha256 hex digest, got {self.image_key!r}.")

    def _validate_clip(self) -> None:
        """The clip options of issue 12: loop, smooth, format."""
        _one_of("loop", self.loop, LOOPS)
        if isinstance(self.smooth, bool) or self.smooth not in SMOOTH_FACTORS:
            raise UserError(f"smooth must be one of {', '.join(map(str, SMOOTH_FACTORS))}, got {self.smooth!r}.")
        _one_of("format", self.format, FORMATS)
        _one_of("coherence", self.coherence, COHERENCES)

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
        different controls never share a batch), and the model and LoRA set."""
        return " ".join((self.size, self.control)) + self._weights_key()

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
    def from_dict(cls, data: dict) -> RenderParams:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in _WHOLE_FIELDS:  # JSON may write a whole number as 12.0; 2.5 stays for validate to refuse
            if isinstance(values.get(name), float) and values[name].is_integer():
                values[name] = int(values[name])
        if "loras" in values:  # JSON keeps the pairs as lists
            values["loras"] = tuple((str(name), float(weight)) for name, weight in values["loras"])
        return cls(**values)


# The fields declared ``int`` (``seed``: ``int | None``): whole numbers, never a float such as 2.5.
_WHOLE_FIELDS = tuple(field.name for field in dataclasses.fields(RenderParams) if field.type in ("int", "int | None"))


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` → ``(512, 768)``; a readable error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"size must look like WIDTHxHEIGHT (e.g. 512x512), got {text!r}.")
    return int(match.group(1)), int(match.group(2))


def keyframes(prompt: str) -> list[tuple[int, str]]:
    """Split ``"0: a cat | 24: a tiger"`` into ``[(0, "a cat"), (24, "a tiger")]``.

    A prompt without ``|`` and without a leading ``N:`` is a single key at frame 0. Keys must be
    increasing; the first key is moved to frame 0 if it starts later (the clip needs a prompt there).
    """
    pieces = [p for p in prompt.split("|")]
    if len(pieces) == 1 and not _KEYFRAME.match(prompt):
        return [(0, prompt.strip())]
    keys: list[tuple[int, str]] = []
    for piece in pieces:
        match = _KEYFRAME.match(piece)
        if not match or not match.group(2):
            raise UserError(f'Keyframe prompts look like "0: a cat | 24: a tiger"; could not read {piece.strip()!r}.')
        frame, text = int(match.group(1)), match.group(2)
        if keys and frame <= keys[-1][0]:
            raise UserError(f"Keyframes must be in increasing frame order; {frame} comes after {keys[-1][0]}.")
        keys.append((frame, text))
    keys[0] = (0, keys[0][1])
    return keys


def _whole(name: str, value) -> None:
    """An int field holds an int (``None`` is left to the field's own check: a seed may be unset)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{name.replace('_', ' ')} must be a whole number, got {value!r}.")


def _in_range(name: str, value, low, high) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number, got {value!r}.")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low:g} and {high:g}, got {value:g}.")


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}.")

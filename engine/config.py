"""The host's settings: one typed schema, read from a TOML file and ``ANIMABOT_*`` environment variables.

Each section is a frozen pydantic dataclass (``dataclasses.replace`` and ``fields`` work as on any
dataclass) whose keys are declared once, with their type, range and a one-line description;
``config.example.toml`` shows every key with that description (``tests/test_config_example.py``
checks it). :func:`load_config` reports every mistake at once, one line each, as a ``UserError``.

An environment variable overrides one key: ``ANIMABOT_<SECTION>_<KEY>`` (``ANIMABOT_ENGINE_MAX_BATCH=4``,
``ANIMABOT_STORE_URL=postgresql://...``), ``ANIMABOT_<KEY>`` at the top (``ANIMABOT_DATA_DIR``), and
``DISCORD_TOKEN`` for ``[discord] token``. Its text is read as a TOML value of the key's type (text
keys take it as it is; a list may be ``1,2``); an empty variable is ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal, Required, get_args

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict

from engine.errors import UserError
from engine.request import params
from engine.request.catalog import DEFAULT_MODEL, LORA_WEIGHT_RANGE, NAME, NAME_RULE, Catalog, build_catalog
from engine.request.params import CONTROLS, RenderParams
from engine.request.validation import (
    SCHEMA,
    Loc,
    Wording,
    closest,
    error_sentences,
    field_types,
    from_text,
    sentence_error,
    unwrap,
)

CompileMode = Literal["reduce-overhead", "max-autotune"]
COMPILE_MODES = get_args(CompileMode)


def _starts_with(*prefixes: str, empty: bool = False):
    """A check that text begins with one of ``prefixes`` (or, with ``empty``, is empty)."""

    def check(value: str) -> str:
        if (empty and not value) or value.startswith(prefixes):
            return value
        raise ValueError(f"must {'be empty or ' if empty else ''}start with {' or '.join(prefixes)}")

    return AfterValidator(check)


# -- the sections ---------------------------------------------------------------------------------
@dataclass(frozen=True, config=SCHEMA)
class EngineConfig:
    """[engine]: the weights a worker loads and how it runs them."""

    model: StrictStr = Field(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        min_length=1,
        description='the default model: a hub id, a local diffusers folder, or "test-tiny" (random weights built in code, for tests)',
    )
    controlnet: StrictStr = Field(
        "lllyasviel/control_v11p_sd15_canny",
        min_length=1,
        description="the Canny ControlNet: a hub id or a local diffusers folder",
    )
    device: StrictStr = Field("auto", min_length=1, description="where renders run: auto, cuda, cuda:N or cpu")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="the weights' precision; auto is float16 on CUDA and float32 on the CPU"
    )
    compile: StrictBool = Field(True, description="CUDA only: compile the UNet+ControlNet step as CUDA graphs")
    compile_mode: CompileMode = Field(
        "reduce-overhead", description="how the step is compiled; max-autotune tries kernel choices for a faster step"
    )
    max_batch: StrictInt = Field(
        8, ge=1, description="concurrent jobs of one size whose denoising steps share one UNet call"
    )
    job_timeout_seconds: StrictFloat = Field(
        1800.0, gt=0, description="a job still rendering after this many seconds is stopped"
    )
    retention_days: StrictFloat = Field(
        7.0, gt=0, description="job files older than this many days are deleted, and pictures no job used for as long"
    )
    max_loaded_models: StrictInt = Field(
        2, ge=1, description="models kept loaded at once; the least recently used one is unloaded first"
    )
    # The depth and pose controls (engine.render.weights.controls): each its ControlNet and annotator,
    # loaded the first time a job asks for that control.
    depth_controlnet: StrictStr = Field(
        "lllyasviel/control_v11f1p_sd15_depth",
        description='the depth ControlNet; "" means this host does not offer depth',
    )
    depth_annotator: StrictStr = Field(
        "depth-anything/Depth-Anything-V2-Small-hf", description="the depth-estimation model that makes the depth map"
    )
    pose_controlnet: StrictStr = Field(
        "lllyasviel/control_v11p_sd15_openpose",
        description='the OpenPose ControlNet; "" means this host does not offer pose',
    )
    pose_annotator: StrictStr = Field(
        "usyd-community/vitpose-base-simple",
        description="the ViTPose model whose keypoints are drawn as an OpenPose skeleton",
    )
    # Cross-frame attention (coherence cross-frame, engine.render.coherence): the keys and values it keeps.
    coherence_budget_mb: StrictFloat = Field(
        4096.0, ge=0, description="memory for the cross-frame states of the jobs rendering at once; more jobs wait"
    )
    coherence_blocks: tuple[Literal["down", "mid", "up"], ...] = Field(
        ("up",), min_length=1, description="the UNet blocks whose self-attention looks at other frames"
    )
    # coherence motion (engine.render.motion): an AnimateDiff motion adapter for SD1.5.
    motion_adapter: StrictStr = Field(
        "",
        description='"" (coherence motion not offered), "test-tiny", a hub id or a diffusers folder of a motion adapter',
    )

    def control_ids(self, control: str) -> tuple[str, str | None]:
        """The ControlNet and annotator ids configured for ``control`` (canny has no annotator; ``""``:
        this host does not offer that control)."""
        if control not in CONTROLS:
            raise UserError(f"unknown control {control!r}; choose one of: {', '.join(CONTROLS)}.")
        if control == "canny":
            return self.controlnet, None
        return getattr(self, f"{control}_controlnet"), getattr(self, f"{control}_annotator")


@dataclass(frozen=True, config=SCHEMA)
class LimitsConfig:
    """[limits]: the defaults of every guild; a guild's admins may change its own."""

    max_frames: StrictInt = Field(48, ge=1, le=params.MAX_FRAMES, description="most frames in one clip")
    max_steps: StrictInt = Field(30, ge=1, le=params.MAX_STEPS, description="most denoising steps")
    max_side: StrictInt = Field(768, ge=64, le=params.MAX_SIDE, description="the longest width or height, in pixels")
    max_fps: StrictInt = Field(24, ge=1, le=params.MAX_FPS, description="the highest frame rate")
    daily_quota: StrictInt = Field(20, ge=0, description="renders per member per UTC day")
    max_queued_per_user: StrictInt = Field(3, ge=1, description="jobs one member may have waiting or rendering")
    cooldown_seconds: StrictInt = Field(10, ge=0, description="seconds a member waits between two requests")
    upload_limit_bytes: StrictInt = Field(
        10 * 1024 * 1024, ge=1, description="the largest file posted in a channel; Discord's default is 10 MiB"
    )

    @classmethod
    def bounds(cls, name: str) -> tuple[int, int | None]:
        """``(lowest, highest or None)`` the schema allows for the limit ``name``: a guild's own
        limits (``bot.guild_limits``) are held to the same range as the host's."""
        metadata = cls.__pydantic_fields__[name].metadata
        low = next(m.ge for m in metadata if hasattr(m, "ge"))
        return low, next((m.le for m in metadata if hasattr(m, "le")), None)


@dataclass(frozen=True, config=SCHEMA)
class DiscordConfig:
    """[discord]: the bot's account and where Discord is."""

    token: StrictStr = Field("", description="the bot token; better set DISCORD_TOKEN in the environment")
    guild_ids: tuple[Annotated[StrictInt, Field(gt=0)], ...] = Field(
        (),
        strict=False,  # TOML gives a list; each id is still a strict integer
        description="guild ids, like [123456789012345678]: commands sync at once there; [] syncs globally (up to an hour)",
    )
    # (a field with a check keeps its Field inside Annotated: pydantic 2.6 cannot apply a later one)
    api_base: Annotated[StrictStr, _starts_with("http://", "https://"), Field(description="Discord's REST API")] = (
        "https://discord.com/api/v10"
    )
    gateway_url: Annotated[StrictStr, _starts_with("ws://", "wss://"), Field(description="Discord's gateway")] = (
        "wss://gateway.discord.gg/"
    )
    shard_count: StrictInt = Field(
        0,
        ge=0,
        description="gateway shards in all: 0 asks Discord; set it (and shard_ids) to run the bot as several processes",
    )
    shard_ids: tuple[Annotated[StrictInt, Field(ge=0)], ...] = Field(
        (),
        strict=False,  # TOML gives a list
        description="the shards this process connects, like [0, 1], each below shard_count; [] connects them all",
    )

    @model_validator(mode="after")
    def _shards_within_count(self) -> DiscordConfig:
        if self.shard_ids and not self.shard_count:
            raise sentence_error("shard_ids needs shard_count: set how many shards there are in all.")
        if outside := [i for i in self.shard_ids if i >= self.shard_count]:
            raise sentence_error(
                f"shard_ids may name shards 0 to {self.shard_count - 1} of shard_count {self.shard_count}, not {outside}."
            )
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise sentence_error("shard_ids names a shard twice; name each once.")
        return self


@dataclass(frozen=True, config=SCHEMA)
class StoreConfig:
    """[store]: the job store; the SQLite file in data_dir (one host) or PostgreSQL (many)."""

    url: Annotated[
        StrictStr,
        _starts_with("postgresql://", "postgres://", empty=True),
        Field(description='"" for the SQLite file in data_dir, or postgresql://user@host:port/db for many hosts'),
    ] = ""
    lease_seconds: StrictFloat = Field(
        30.0, gt=0, description="a worker silent this many seconds loses its jobs to the others, which resume them"
    )
    max_blob_mb: StrictFloat = Field(
        64.0, gt=0, description="PostgreSQL: the largest frame, preview, video or upload kept in the database"
    )


def _listen_address(value: str) -> str:
    """``""`` (off) or ``HOST:PORT``."""
    host, _, port = value.rpartition(":")
    if value and not (host.strip("[]") and port.isdigit() and int(port) <= 65535):
        raise ValueError("must be empty (off) or HOST:PORT, like 127.0.0.1:9464")
    return value


@dataclass(frozen=True, config=SCHEMA)
class MetricsConfig:
    """[metrics]: Prometheus metrics (GET /metrics) and a liveness answer (GET /healthz) from each process."""

    listen: Annotated[
        StrictStr,
        AfterValidator(_listen_address),
        Field(description='"" (off), or HOST:PORT to serve on; each process may override it with --metrics-listen'),
    ] = ""


@dataclass(frozen=True, config=SCHEMA)
class SafetyConfig:
    """[safety]: the content policy's host side: the checker model, and words refused everywhere."""

    model: StrictStr = Field(
        "",
        description='the safety checker: "CompVis/stable-diffusion-safety-checker", a local folder of it, '
        '"test-tiny" (random weights, for tests), or "" (no checker: only the banned words are checked)',
    )
    enabled: StrictBool = Field(True, description="whether the checker runs where a guild's policy asks for it")
    threshold: StrictFloat = Field(
        0.5, ge=0, le=1, strict=False, description="a picture scoring at least this is flagged (0 flags every one)"
    )
    every_k_frames: StrictInt = Field(8, ge=1, description="frames checked: the first, every k-th and the last")
    banned_words: tuple[StrictStr, ...] = Field(
        (), strict=False, description='words refused in every prompt, like ["gore", "nude"] (guilds add their own)'
    )
    age_restricted: Literal["allow", "check"] = Field(
        "allow", description="in age-restricted channels: no checks (allow) or the guild's policy (check)"
    )

    @property
    def checks_pictures(self) -> bool:
        """Whether a checker model is configured and enabled (else the policy is the word list alone)."""
        return self.enabled and bool(self.model)


class ModelTable(TypedDict, total=False):
    """[models.NAME]: a model members pick by name (in Discord, and with animabot render --model)."""

    __pydantic_config__ = SCHEMA
    model: Required[
        Annotated[
            StrictStr,
            Field(min_length=1, description="a hub id, a diffusers folder or one single-file SD1.5 .safetensors"),
        ]
    ]
    controlnet: Annotated[StrictStr, Field(description="its Canny ControlNet (default the [engine] one)")]
    vae: Annotated[StrictStr, Field(description="its VAE, a hub id or folder (default the model's own)")]
    config: Annotated[
        StrictStr, Field(description="a single file's configs: a hub id or folder (default [engine] model)")
    ]


class LoraTable(TypedDict, total=False):
    """[loras.NAME]: a LoRA members add by name, with a weight (in Discord, and with animabot render --lora NAME:0.8)."""

    __pydantic_config__ = SCHEMA
    file: Required[Annotated[StrictStr, Field(min_length=1, description="its .safetensors file (diffusers or kohya)")]]
    weight: Annotated[
        StrictFloat,
        Field(ge=LORA_WEIGHT_RANGE[0], le=LORA_WEIGHT_RANGE[1], description="the weight when none is given"),
    ]
    trigger: Annotated[StrictStr, Field(description="words added to the prompt (to each keyframe)")]


def _table_name(name: str) -> str:
    """A [models.NAME]/[loras.NAME] name members can type (build_catalog trusts these tables as checked here)."""
    if not NAME.fullmatch(name):
        raise sentence_error(f"a name is {NAME_RULE}.")
    return name


def _model_name(name: str) -> str:
    if name == DEFAULT_MODEL:
        raise sentence_error("the name default is the [engine] model; pick another name.")
    return name


def _checked_render(value, handler) -> RenderParams:
    """[render]: a RenderParams (taken as it is) or a table of its fields, checked by the request's
    own schema (``RenderParams``' fields and rules), less the prompt, which comes with each request;
    an unknown key is refused here, as in every section (a request ignores one)."""
    if isinstance(value, RenderParams):
        return value
    return handler({"prompt": "-", **value} if isinstance(value, dict) else value)


@dataclass(frozen=True, config=SCHEMA)
class Config:
    data_dir: Path = Field(
        Path("data"), description="where the SQLite job store, job frames and results live (relative to where you run)"
    )
    engine: EngineConfig = field(default_factory=EngineConfig)
    render: Annotated[RenderParams, WrapValidator(_checked_render)] = field(
        default_factory=lambda: RenderParams(prompt="-")
    )
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    # the [models.NAME] and [loras.NAME] tables, as read (the catalog is built from them)
    models: dict[Annotated[str, AfterValidator(_table_name), AfterValidator(_model_name)], ModelTable] = field(
        default_factory=dict
    )
    loras: dict[Annotated[str, AfterValidator(_table_name)], LoraTable] = field(default_factory=dict)

    @property
    def catalog(self) -> Catalog:
        """The models (``default`` is ``[engine] model``) and LoRAs members may pick by name."""
        return build_catalog(self.engine.model, self.models, self.loras)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "animabot.sqlite3"

    @property
    def store_location(self) -> str | Path:
        """Where the job store is: ``[store] url`` (``ANIMABOT_STORE_URL`` overrides) or the SQLite file."""
        return self.store.url or self.db_path

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    def defaults(self, prompt: str, **overrides) -> RenderParams:
        """Render parameters from the ``[render]`` defaults, with the given values replacing them."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self.render, prompt=prompt, **given)


# [engine], [render], [limits], [discord], [store], [safety] by name; and the tables of tables, [models.NAME] and [loras.NAME]
SECTIONS = {name: unwrap(kind)[0] for name, kind in field_types(Config).items() if field_types(kind)}
TABLES = ("models", "loras")


# -- reading ----------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or ``./config.toml`` when it exists, else built-in defaults) and the environment.

    Every mistake is one line of the ``UserError``, all of them at once."""
    if path is None:
        path = Path("config.toml") if Path("config.toml").exists() else None
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"Config file {path} does not exist; copy config.example.toml and edit it.") from None
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"Config file {path} is not valid TOML ({err}); fix that line.") from None
    raw, sources, mistakes = _with_environment(raw, os.environ if environ is None else environ)
    wording = _FileWording(Path(path).name if path is not None else "the config", sources)
    try:
        config = TypeAdapter(Config).validate_python(raw)
    except ValidationError as err:
        raise UserError("\n".join(mistakes + error_sentences(err, Config, wording))) from None
    try:
        config.catalog.check(config.render.model, config.render.loras)
    except UserError as err:
        mistakes.append(f"[render]: {err}")
    if mistakes:
        raise UserError("\n".join(mistakes))
    return config


def _with_environment(raw: dict, environ: Mapping[str, str]) -> tuple[dict, dict[Loc, str], list[str]]:
    """``raw`` with the ``ANIMABOT_*`` (and ``DISCORD_TOKEN``) overrides; which key each variable set;
    a sentence for each ``ANIMABOT_<SECTION>_*`` variable that names no key."""
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    sources: dict[Loc, str] = {}
    names: dict[str, Loc] = {}
    for key, annotation in field_types(Config).items():
        if key in SECTIONS:
            names |= {f"ANIMABOT_{key}_{inner}".upper(): (key, inner) for inner in field_types(annotation)}
        elif key not in TABLES:
            names[f"ANIMABOT_{key}".upper()] = (key,)
    if not environ.get("ANIMABOT_DISCORD_TOKEN"):  # DISCORD_TOKEN: the usual name of the token's variable
        names["DISCORD_TOKEN"] = ("discord", "token")
    for variable, loc in names.items():
        text = environ.get(variable)
        if not text:
            continue
        where = raw if len(loc) == 1 else raw.setdefault(loc[0], {})
        if isinstance(where, dict):
            where[loc[-1]] = from_text(text, _annotation(loc))
            sources[loc] = variable
    prefixes = tuple(f"ANIMABOT_{section.upper()}_" for section in SECTIONS)
    mistakes = [
        f"unknown environment variable {variable}; "
        + (f"did you mean {close}?" if (close := closest(variable, names)) else "no setting has that name.")
        for variable in sorted(environ)
        if variable.startswith(prefixes) and variable not in names
    ]
    return raw, sources, mistakes


def _annotation(loc: Loc):
    fields = field_types(Config)
    return fields[loc[0]] if len(loc) == 1 else field_types(fields[loc[0]])[loc[1]]


class _FileWording(Wording):
    """Places in a config file: ``data_dir``, ``[engine] max_batch``, ``[models.dreamy] vae``, or the
    environment variable that set the value."""

    mapping = "a table"

    def __init__(self, file: str, sources: dict[Loc, str]) -> None:
        self.file, self.sources = file, sources

    def name(self, loc: Loc) -> str:
        for size in (2, 1):
            if loc[:size] in self.sources:
                return self.sources[loc[:size]] + _index(loc[size:])
        if not loc:
            return self.file
        size = 2 if loc[0] in TABLES else 1
        if loc[0] not in SECTIONS and loc[0] not in TABLES:
            return f"{loc[0]}{_index(loc[1:])}"
        heading = "[" + ".".join(map(str, loc[:size])) + "]"
        rest = loc[size:]
        return f"{heading} {rest[0]}{_index(rest[1:])}" if rest else heading

    def unknown(self, loc: Loc, value) -> str:
        if len(loc) > 1:
            return super().unknown(loc, value)
        if isinstance(value, dict):
            return f"unknown section [{loc[0]}] in {self.file}"
        return f"unknown key {loc[0]} at the top of {self.file}"

    def suggestion(self, loc: Loc, name: str) -> str:
        return f"[{name}]" if len(loc) == 1 and (name in SECTIONS or name in TABLES) else name

    def hint(self, loc: Loc, names: list[str]) -> str:
        if len(loc) == 1:  # a key of a section written above every heading
            for section, kind in SECTIONS.items():
                if loc[0] in field_types(kind):
                    return f"it belongs in [{section}]: move it below that heading."
        return super().hint(loc, names)


def _index(rest: Loc) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)

"""Settings read from a TOML file (``config.example.toml`` documents every key)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.request.catalog import Catalog, build_catalog
from engine.request.params import RenderParams

# torch.compile modes for the UNet+ControlNet step: both replay CUDA graphs; max-autotune also
# benchmarks kernel choices at compile time (minutes longer on the first start, cached after).
COMPILE_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class EngineConfig:
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    controlnet: str = "lllyasviel/control_v11p_sd15_canny"
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = True  # CUDA only
    compile_mode: str = "reduce-overhead"  # the step's torch.compile mode: reduce-overhead or max-autotune
    max_batch: int = 8
    job_timeout_seconds: float = 1800.0
    retention_days: float = 7.0
    max_loaded_models: int = 2  # models kept loaded at once (least recently used goes first)
    # -- depth and pose controls (engine.render.weights.controls): each one's ControlNet and annotator, loaded
    # the first time a job asks for that control; "" means this host does not offer it.
    depth_controlnet: str = "lllyasviel/control_v11f1p_sd15_depth"
    depth_annotator: str = "depth-anything/Depth-Anything-V2-Small-hf"
    pose_controlnet: str = "lllyasviel/control_v11p_sd15_openpose"
    pose_annotator: str = "usyd-community/vitpose-base-simple"


@dataclass(frozen=True)
class LimitsConfig:
    max_frames: int = 48
    max_steps: int = 30
    max_side: int = 768
    max_fps: int = 24
    daily_quota: int = 20
    max_queued_per_user: int = 3
    cooldown_seconds: int = 10
    upload_limit_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class DiscordConfig:
    token: str = ""
    guild_ids: tuple[int, ...] = ()
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"


@dataclass(frozen=True)
class StoreConfig:
    url: str = ""  # empty: the SQLite file in data_dir; postgresql://user@host:port/db: PostgreSQL
    lease_seconds: float = 30.0  # a worker silent this long loses its jobs to the others
    max_blob_mb: float = 64.0  # PostgreSQL: the largest frame, preview, video or upload kept in the database


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    engine: EngineConfig = field(default_factory=EngineConfig)
    render: RenderParams = field(default_factory=lambda: RenderParams(prompt="-"))
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    models: dict = field(default_factory=dict)  # the [models.NAME] tables, as read
    loras: dict = field(default_factory=dict)  # the [loras.NAME] tables, as read

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


def _section(cls, table: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise UserError(f"Unknown setting(s) {', '.join(unknown)} in [{where}] of the config file; check the spelling.")
    return cls(**table)


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read ``path`` (or ``./config.toml`` when it exists, else built-in defaults)."""
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
    discord_raw = dict(raw.get("discord", {}))
    discord_raw["guild_ids"] = tuple(int(g) for g in discord_raw.get("guild_ids", ()))
    if os.environ.get("DISCORD_TOKEN"):
        discord_raw["token"] = os.environ["DISCORD_TOKEN"]
    render = _section(RenderParams, {"prompt": "-", **raw.get("render", {})}, "render")
    store_raw = dict(raw.get("store", {}))
    if os.environ.get("ANIMABOT_STORE_URL"):
        store_raw["url"] = os.environ["ANIMABOT_STORE_URL"]
    config = Config(
        data_dir=Path(raw.get("data_dir", "data")),
        engine=_section(EngineConfig, raw.get("engine", {}), "engine"),
        render=render,
        limits=_section(LimitsConfig, raw.get("limits", {}), "limits"),
        discord=_section(DiscordConfig, discord_raw, "discord"),
        store=_section(StoreConfig, store_raw, "store"),
        models=dict(raw.get("models", {})),
        loras=dict(raw.get("loras", {})),
    )
    if config.engine.compile_mode not in COMPILE_MODES:
        modes = ", ".join(COMPILE_MODES)
        raise UserError(f"[engine] compile_mode must be one of {modes}, got {config.engine.compile_mode!r}.")
    if config.engine.max_loaded_models < 1:
        raise UserError(f"[engine] max_loaded_models must be at least 1, got {config.engine.max_loaded_models}.")
    config.catalog  # noqa: B018 -- a bad [models.*] or [loras.*] table is refused here, at start
    return config

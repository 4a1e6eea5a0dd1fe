"""``animabot check``: what a host runs before going live, one line per item.

Each item is a small function of what it checks, returning a :class:`Result`: ✓ with what was
found, ✗ with what to do, or – for an item that does not apply here. :func:`run_check` prints them
as they come and answers the exit status: 0 only when no item is ✗, else 1. A config that does not
load never gets this far (its one-line errors and exit 2, as for every command). A store that
cannot be opened is the ``StoreFault`` sentence ``run`` and ``render`` stop with.

The checks change nothing a host keeps: the store is opened without being migrated (a missing
SQLite file is made empty, as ``run`` would), weights are looked up on disk and in the local
Hugging Face cache only, and Discord is only read: ``GET /users/@me`` (the token),
``/users/@me/guilds`` (without ``guild_ids``), and per guild ``/guilds/{id}`` (its roles and
owner), ``/guilds/{id}/members/{bot}`` (the bot's roles) and ``/guilds/{id}/channels`` (the
overwrites), at ``[discord] api_base`` (so tests point it at the loopback Discord). Permissions are
computed as Discord computes them (:func:`guild_permissions`, :func:`channel_permissions`).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord

from bot.checks import missing_for_posting
from engine.config import Config, DiscordConfig, EngineConfig, SafetyConfig
from engine.errors import UserError
from engine.request.catalog import LoraEntry
from engine.request.params import CONTROLS
from engine.store.db import connect, is_postgres_url, writable_folder
from engine.store.schema import SCHEMA_VERSION, schema_version
from engine.video.runner import ffmpeg_exe

MARKS = {True: "✓", False: "✗", None: "–"}
DOWNLOAD = "run `animabot models download`"


@dataclass(frozen=True)
class Result:
    """One checked item: ``ok`` True (✓), False (✗: ``line`` says what to do) or None (–, skipped)."""

    ok: bool | None
    line: str

    def __str__(self) -> str:
        return f"{MARKS[self.ok]} {self.line}"


# -- the host ---------------------------------------------------------------------------------------
def config_item(path: Path | None) -> Result:
    """Reached only with a config that loaded (one that does not is exit 2 before any item)."""
    return Result(True, f"config: {path if path is not None else 'none (built-in defaults)'} is valid")


def data_dir_item(data_dir: Path) -> Result:
    try:
        writable_folder(data_dir)
    except UserError as err:
        return Result(False, str(err))
    return Result(True, f"data_dir {data_dir.resolve()} is writable")


async def store_item(config: Config) -> Result:
    """Reachable, and its schema version against this code's (read, never migrated here)."""
    location = config.store_location
    where = f"PostgreSQL {_without_password(str(location))}" if is_postgres_url(location) else f"SQLite {location}"
    try:
        db = await connect(location, lease_seconds=config.store.lease_seconds)
        try:
            version = await schema_version(db)
        finally:
            await db.close()
    except UserError as err:
        return Result(False, str(err))
    if version > SCHEMA_VERSION:
        return Result(
            False,
            f"job store {where} is at schema version {version}, newer than this code's {SCHEMA_VERSION}; "
            "update animabot (or point it at a store of this version).",
        )
    if version == SCHEMA_VERSION:
        return Result(True, f"job store {where}: schema version {version} (current)")
    if version == 0:
        return Result(
            True, f"job store {where}: new; `animabot run` makes its tables (schema version {SCHEMA_VERSION})"
        )
    kept = "" if is_postgres_url(location) else f", keeping a copy as {Path(location).name}.bak-v{version}"
    return Result(
        True, f"job store {where}: schema version {version}; `animabot run` upgrades it to {SCHEMA_VERSION}{kept}"
    )


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def ffmpeg_item(exe: str | None = None) -> Result:
    """The ffmpeg the engine runs (``engine.video.runner.ffmpeg_exe``) and its version line."""
    try:
        exe = exe or ffmpeg_exe()
        done = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
        first = done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else ""
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:
        first = f"({err})"
    if not first.startswith("ffmpeg version"):
        return Result(
            False,
            f"ffmpeg: {exe or 'none found'} does not run as ffmpeg {first}; install ffmpeg "
            "(apt-get install ffmpeg) or imageio-ffmpeg (pip install imageio-ffmpeg).",
        )
    return Result(True, f"ffmpeg: {exe} ({first.split(' Copyright')[0]})")


# -- the engine: weights and GPU --------------------------------------------------------------------
def wanted_weights(config: Config) -> dict[tuple[str, str, str], str]:
    """``(source, kind, control)`` → a label, for every part a render may load: each model (and a
    single file's config source), its VAE, and each offered control's ControlNet and annotator,
    picked as ``engine.render.weights.inventory.parts`` picks them (built-in models bring theirs)."""
    from engine.render.weights import builtin
    from engine.render.weights.inventory import controlnet_of

    engine = config.engine
    found: dict[tuple[str, str, str], str] = {}
    for entry in config.catalog.models.values():
        configs_from = entry.configs_from(engine.model)
        found.setdefault((entry.model, "pipeline", ""), f"model {entry.name}")
        if entry.single_file:
            found.setdefault((configs_from, "pipeline", ""), f"model {entry.name}'s configs")
        if entry.vae:
            found.setdefault((entry.vae, "vae", ""), f"VAE of model {entry.name}")
        found.setdefault((controlnet_of(entry, engine), "controlnet", "canny"), "ControlNet canny")
        for control in CONTROLS[1:]:
            controlnet, annotator = engine.control_ids(control)
            if controlnet and annotator:
                found.setdefault(
                    (builtin.companion(configs_from, controlnet), "controlnet", control), f"ControlNet {control}"
                )
                found.setdefault(
                    (builtin.companion(configs_from, annotator), "annotator", control), f"annotator {control}"
                )
    return found


def weight_item(label: str, source: str, kind: str, cross_attention_dim: int | None = 768) -> Result:
    """Present (built in, a single file, a folder, or in the local Hugging Face cache; never fetched)
    and each ``.safetensors`` header whole."""
    from engine.render.weights import builtin, hub
    from engine.render.weights.weights_check import check_sd15_checkpoint, read_header

    try:
        if builtin.is_builtin(source):
            return Result(True, f"{label}: {source} (built in code)")
        if source.endswith(".safetensors"):
            check_sd15_checkpoint(source, label, cross_attention_dim)
            return Result(True, f"{label}: {source} (one file, header valid)")
        if hub.is_local(source):
            folder, where = Path(source).expanduser(), "folder"
            marker = folder / hub.MARKER_FILE[kind]
            if not marker.is_file():
                return Result(
                    False,
                    f"{label}: the folder {source} has no {marker.name}; point the config at a diffusers folder "
                    "(`animabot models download --to` makes one).",
                )
        else:
            folder, where = hub.fetch(source, kind, local_files_only=True), "Hugging Face cache"
        files = sorted(folder.rglob("*.safetensors"))
        for file in files:
            read_header(file, label)
    except UserError as err:
        return Result(False, f"{label}: {err}")
    if not files:
        return Result(False, f"{label}: {source} has no .safetensors weights in {folder}; {DOWNLOAD}.")
    return Result(True, f"{label}: {source} ({where}, {len(files)} weight files, headers valid)")


def lora_item(lora: LoraEntry) -> Result:
    from engine.render.weights.weights_check import check_lora_file

    try:
        check_lora_file(lora.file, f"LoRA {lora.name}")
    except UserError as err:
        return Result(False, str(err))
    return Result(True, f"LoRA {lora.name}: {lora.file} (header valid)")


def weights_items(config: Config) -> list[Result]:
    from engine.render.weights.weights_check import expected_width

    width = expected_width(config.engine.model)
    wanted = wanted_weights(config).items()
    results = [weight_item(label, source, kind, width) for (source, kind, _), label in wanted]
    results += [
        Result(None, f"{control}: not offered on this host ({control}_controlnet or {control}_annotator is empty)")
        for control in CONTROLS[1:]
        if not all(config.engine.control_ids(control))
    ]
    return results + [lora_item(lora) for lora in config.catalog.loras.values()]


def safety_item(safety: SafetyConfig, *, with_engine: bool = True) -> Result:
    """The ``[safety]`` checker: present like the other weights, or, without one, what the policy
    then rests on (``/limits show`` says the same to each server)."""
    if not safety.checks_pictures:
        why = "none configured" if not safety.model else f"{safety.model} is off (enabled = false)"
        return Result(True, f"safety checker: {why}; frames are not checked; only banned words (set [safety] model)")
    if not with_engine:
        return Result(
            None, f"safety checker {safety.model}: not checked (--no-engine: `animabot worker` hosts load it)"
        )
    return weight_item("safety checker", safety.model, "safety", None)


def gpu_item(engine: EngineConfig) -> Result:
    """Where renders run: a CUDA GPU, or the CPU (a ✓ with a note, unless the config asks for cuda)."""
    try:
        from engine.render.weights.models import describe_device  # loads torch and diffusers
    except ImportError as err:
        return Result(
            False,
            f"GPU: the engine's libraries do not import ({err}); install animabot's packages (pip install -e .), "
            "or check with --no-engine on a host that runs the bot alone.",
        )
    try:
        where = describe_device(engine.device, engine.dtype)
    except UserError as err:
        return Result(False, f"GPU: {err}")
    if not where.startswith("cpu"):
        return Result(True, f"GPU: {where}")
    why = "as [engine] device asks" if engine.device == "cpu" else "PyTorch sees no CUDA GPU"
    return Result(
        True,
        f"GPU: none; renders run on the CPU ({where}, {why}): fine for the built-in test models, minutes per real clip",
    )


# Beyond posting (bot.checks.missing_for_posting): the 🔄/❌ on a result (bot.delivery.results.decorate)
# need Add Reactions, and Discord lets a bot react only where it may read the message history.
FOR_REACTIONS = (("read_message_history", "Read Message History"), ("add_reactions", "Add Reactions"))
TEXT_CHANNELS = (0, 5)  # text and announcement channels
SHOWN_CHANNELS = 5
TIMEOUT = aiohttp.ClientTimeout(total=20)


class ErrorAnswer(Exception):
    """Discord answered an error status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status


# -- Discord: the token, and the bot's permissions in each guild ----------------------------------
def guild_permissions(guild: dict, role_ids: list[str], user_id: int) -> discord.Permissions:
    """A member's permissions in the guild (``GET /guilds/{id}`` payload): @everyone's and its roles',
    everything for the owner or an administrator."""
    if str(guild.get("owner_id")) == str(user_id):
        return discord.Permissions.all()
    roles = {str(role["id"]): int(role["permissions"]) for role in guild.get("roles", [])}
    value = roles.get(str(guild["id"]), 0)  # @everyone's id is the guild's
    for role_id in role_ids:
        value |= roles.get(str(role_id), 0)
    permissions = discord.Permissions(value)
    return discord.Permissions.all() if permissions.administrator else permissions


def channel_permissions(
    base: discord.Permissions, channel: dict, guild_id: int, role_ids: list[str], user_id: int
) -> discord.Permissions:
    """``base`` in ``channel`` (a channel payload): @everyone's overwrite, then the roles' together,
    then the member's own."""
    if base.administrator:
        return base
    value = base.value
    overwrites = {(int(o["type"]), str(o["id"])): o for o in channel.get("permission_overwrites", [])}

    def apply(deny: int, allow: int) -> None:
        nonlocal value
        value = (value & ~deny) | allow

    everyone = overwrites.get((0, str(guild_id)))
    if everyone is not None:
        apply(int(everyone["deny"]), int(everyone["allow"]))
    deny = allow = 0
    for role_id in role_ids:
        role = overwrites.get((0, str(role_id)))
        if role is not None:
            deny, allow = deny | int(role["deny"]), allow | int(role["allow"])
    apply(deny, allow)
    member = overwrites.get((1, str(user_id)))
    if member is not None:
        apply(int(member["deny"]), int(member["allow"]))
    return discord.Permissions(value)


def missing_permissions(permissions: discord.Permissions) -> list[str]:
    """What the bot lacks of what it uses (as Discord's settings name them)."""
    return missing_for_posting(permissions) + [name for flag, name in FOR_REACTIONS if not getattr(permissions, flag)]


NEEDED = missing_permissions(discord.Permissions.none())


async def discord_items(settings: DiscordConfig) -> list[Result]:
    """The token, then one line per guild (``guild_ids``, else every guild the bot is in)."""
    if not settings.token:
        return [
            Result(None, "Discord: no token (DISCORD_TOKEN or [discord] token), so the Discord checks were skipped")
        ]
    base = settings.api_base.rstrip("/")
    headers = {"Authorization": f"Bot {settings.token}", "User-Agent": "DiscordBot (animabot check)"}
    async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:

        async def get(path: str):
            async with session.get(base + path) as response:
                if response.status >= 400:
                    raise ErrorAnswer(response.status, (await response.text())[:200])
                return await response.json()

        try:
            me = await get("/users/@me")
        except ErrorAnswer as err:
            if err.status == 401:
                return [
                    Result(
                        False,
                        "Discord rejected the bot token (401); copy it again from the Developer Portal "
                        "(your application → Bot → Reset Token) into DISCORD_TOKEN.",
                    )
                ]
            return [Result(False, f"Discord answered {err} to the token check; try again in a minute.")]
        except (aiohttp.ClientError, TimeoutError) as err:
            return [
                Result(False, f"Discord cannot be reached at {base} ({err}); check the network or [discord] api_base.")
            ]
        results = [Result(True, f"Discord accepts the token: the bot is {me['username']} (id {me['id']})")]
        try:
            guild_ids = list(settings.guild_ids) or [int(guild["id"]) for guild in await get("/users/@me/guilds")]
        except (ErrorAnswer, aiohttp.ClientError, TimeoutError) as err:
            return results + [Result(False, f"Discord: the bot's servers could not be listed ({err}); try again.")]
        if not guild_ids:
            return results + [Result(False, "Discord: the bot is in no server yet; invite it (see the README).")]
        for guild_id in guild_ids:
            results.append(await guild_item(get, guild_id, int(me["id"])))
        return results


async def guild_item(get, guild_id: int, bot_id: int) -> Result:
    """The bot's permissions in the guild, and the text channels where overwrites take some away."""
    try:
        guild = await get(f"/guilds/{guild_id}")
        role_ids = (await get(f"/guilds/{guild_id}/members/{bot_id}"))["roles"]
        channels = await get(f"/guilds/{guild_id}/channels")
    except ErrorAnswer as err:
        return Result(
            False,
            f"guild {guild_id}: Discord answered {err.status}, so the bot is not in it; invite it "
            "(see the README), or fix [discord] guild_ids.",
        )
    except (aiohttp.ClientError, TimeoutError) as err:
        return Result(False, f"guild {guild_id}: Discord stopped answering ({err}); try again.")
    base = guild_permissions(guild, role_ids, bot_id)
    name = f"guild {guild['name']} ({guild_id})"
    missing = missing_permissions(base)
    if missing:
        return Result(
            False,
            f"{name}: the bot lacks {', '.join(missing)}; give its role these permissions "
            "(Server Settings → Roles), or invite it again with them.",
        )
    lacking = {}
    for channel in channels:
        if channel.get("type") in TEXT_CHANNELS:
            missing = missing_permissions(channel_permissions(base, channel, guild_id, role_ids, bot_id))
            if missing:
                lacking[channel.get("name", channel["id"])] = missing
    text_channels = [c for c in channels if c.get("type") in TEXT_CHANNELS]
    if text_channels and len(lacking) == len(text_channels):
        return Result(
            False,
            f"{name}: no text channel lets the bot post videos ({_listed(lacking)}); fix the channels' permissions.",
        )
    note = f"; not in {_listed(lacking)}" if lacking else ""
    return Result(True, f"{name}: the bot has {', '.join(NEEDED)}{note}")


def _listed(lacking: dict[str, list[str]]) -> str:
    shown = [f"#{name} ({', '.join(missing)})" for name, missing in list(lacking.items())[:SHOWN_CHANNELS]]
    more = len(lacking) - SHOWN_CHANNELS
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


# -- the command ------------------------------------------------------------------------------------
async def check_items(config: Config, config_path: Path | None, *, with_engine: bool = True) -> AsyncIterator[Result]:
    """Every item, in the order they are printed."""
    yield config_item(config_path)
    yield data_dir_item(config.data_dir)
    yield await store_item(config)
    yield ffmpeg_item()
    if with_engine:
        for result in weights_items(config):
            yield result
        yield gpu_item(config.engine)
    else:
        yield Result(None, "weights and GPU: not checked (--no-engine: `animabot worker` hosts render)")
    yield safety_item(config.safety, with_engine=with_engine)
    for result in await discord_items(config.discord):
        yield result


def run_check(config: Config, config_path: Path | None, *, with_engine: bool = True) -> int:
    """``animabot check``: prints one line per item; 0 if none is ✗, else 1."""

    async def main() -> int:
        failed = 0
        async for result in check_items(config, config_path, with_engine=with_engine):
            print(result, flush=True)
            failed += result.ok is False
        return failed

    failed = asyncio.run(main())
    print(f"{failed} item(s) to fix before going live." if failed else "Ready to go live.", flush=True)
    return 1 if failed else 0

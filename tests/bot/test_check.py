"""``animabot check``: each item good and bad, and the command end to end against the loopback Discord."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import sys

import discord
import huggingface_hub.constants
import numpy as np
import pytest
from safetensors.numpy import save_file
from support.fakediscord import FakeDiscord
from support.fakediscord.models import ATTACH_FILES, DEFAULT_EVERYONE_PERMISSIONS
from support.hubserver import REPO_ROOT, closed_port_url

from bot.cli.check import (
    Result,
    channel_permissions,
    data_dir_item,
    discord_items,
    ffmpeg_item,
    gpu_item,
    guild_permissions,
    lora_item,
    safety_item,
    store_item,
    weight_item,
    weights_items,
)
from engine.config import Config, DiscordConfig, EngineConfig, SafetyConfig
from engine.request.catalog import LoraEntry
from engine.store.schema import SCHEMA_VERSION
from engine.store.store import JobStore

TINY = EngineConfig(model="test-tiny", device="cpu", compile=False)


def write_safetensors(path, names: dict[str, tuple[int, ...]]):
    save_file({name: np.zeros(shape, dtype=np.float32) for name, shape in names.items()}, str(path))
    return path


# -- the host -------------------------------------------------------------------------------------
def test_data_dir_writable_or_a_file(tmp_path):
    assert data_dir_item(tmp_path / "data") == Result(True, f"data_dir {tmp_path / 'data'} is writable")
    (tmp_path / "file").write_text("x")
    bad = data_dir_item(tmp_path / "file")
    assert bad.ok is False and "is a file" in bad.line and "set data_dir" in bad.line


async def test_store_new_current_older_and_newer(tmp_path):
    config = Config(data_dir=tmp_path)
    new = await store_item(config)
    assert new.ok and "new; `animabot run` makes its tables" in new.line and "SQLite" in new.line
    await (await JobStore.open(config.db_path)).close()
    assert await store_item(config) == Result(
        True, f"job store SQLite {config.db_path}: schema version {SCHEMA_VERSION} (current)"
    )
    with sqlite3.connect(config.db_path) as conn:
        conn.execute("PRAGMA user_version = 2")
    older = await store_item(config)
    assert older.ok and f"version 2; `animabot run` upgrades it to {SCHEMA_VERSION}" in older.line
    assert "animabot.sqlite3.bak-v2" in older.line
    with sqlite3.connect(config.db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer = await store_item(config)
    assert newer.ok is False and "newer than this code's" in newer.line and "update animabot" in newer.line


async def test_a_damaged_store_is_the_sentence_run_stops_with(tmp_path):
    config = Config(data_dir=tmp_path)
    config.db_path.write_bytes(os.urandom(4096))
    result = await store_item(config)
    with pytest.raises(Exception) as raised:
        await JobStore.open(config.db_path)
    assert result == Result(False, str(raised.value)) and "damaged or not a SQLite database" in result.line


async def test_store_on_postgresql_says_so_without_the_password(pg_cluster):
    url = pg_cluster.new_database()
    config = Config(store=dataclasses.replace(Config().store, url=url))
    new = await store_item(config)
    assert new.ok and new.line.startswith("job store PostgreSQL") and "new" in new.line
    await (await JobStore.open(url)).close()
    current = await store_item(config)
    assert current.ok and f"schema version {SCHEMA_VERSION} (current)" in current.line


def test_ffmpeg_found_with_its_version_or_not(tmp_path):
    found = ffmpeg_item()
    assert found.ok and "ffmpeg version" in found.line
    missing = ffmpeg_item(str(tmp_path / "no-ffmpeg"))
    assert missing.ok is False and "install ffmpeg" in missing.line
    not_ffmpeg = ffmpeg_item("/bin/true")
    assert not_ffmpeg.ok is False


# -- weights and GPU ------------------------------------------------------------------------------
def test_built_in_models_and_their_controls_are_present():
    results = weights_items(Config(engine=TINY))
    lines = [str(r) for r in results]
    assert all(r.ok for r in results), lines
    for label in ("model default", "ControlNet canny", "ControlNet depth", "annotator depth", "ControlNet pose"):
        assert any(line.startswith(f"✓ {label}: test-tiny (built in code)") for line in lines), lines


def test_a_control_the_host_does_not_offer_is_skipped():
    engine = dataclasses.replace(TINY, depth_controlnet="")
    lines = [str(r) for r in weights_items(Config(engine=engine))]
    assert "– depth: not offered on this host (depth_controlnet or depth_annotator is empty)" in lines
    assert not any("ControlNet depth" in line for line in lines)


def test_hub_ids_present_in_the_local_cache_or_not(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--acme--canny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    weights = write_safetensors(snapshot / "diffusion_pytorch_model.safetensors", {"w": (4,)})
    assert weight_item("ControlNet canny", "acme/canny", "controlnet") == Result(
        True, "ControlNet canny: acme/canny (Hugging Face cache, 1 weight files, headers valid)"
    )
    missing = weight_item("ControlNet canny", "acme/elsewhere", "controlnet")
    assert missing.ok is False and "run `animabot models download`" in missing.line
    weights.write_bytes(weights.read_bytes()[:-4])  # a download cut short
    truncated = weight_item("ControlNet canny", "acme/canny", "controlnet")
    assert truncated.ok is False and "truncated" in truncated.line


def test_a_local_folder_needs_its_marker_file(tmp_path):
    write_safetensors(tmp_path / "diffusion_pytorch_model.safetensors", {"w": (4,)})
    bad = weight_item("ControlNet canny", str(tmp_path), "controlnet")
    assert bad.ok is False and "has no config.json" in bad.line
    (tmp_path / "config.json").write_text("{}")
    assert weight_item("ControlNet canny", str(tmp_path), "controlnet").ok


def test_a_single_file_checkpoint_header_is_checked(tmp_path):
    sd15 = {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (4, 8),
    }
    good = write_safetensors(tmp_path / "dreamy.safetensors", sd15)
    assert weight_item("model dreamy", str(good), "pipeline") == Result(
        True, f"model dreamy: {good} (one file, header valid)"
    )
    sdxl = write_safetensors(tmp_path / "xl.safetensors", {"conditioner.embedders.0.w": (4,)})
    bad = weight_item("model xl", str(sdxl), "pipeline")
    assert bad.ok is False and "SDXL" in bad.line


def test_lora_present_or_not_a_lora(tmp_path):
    good = write_safetensors(tmp_path / "pixel.safetensors", {"lora_unet_down.lora_down.weight": (4, 4)})
    assert lora_item(LoraEntry("pixel", str(good))) == Result(True, f"LoRA pixel: {good} (header valid)")
    other = write_safetensors(tmp_path / "other.safetensors", {"w": (4,)})
    bad = lora_item(LoraEntry("other", str(other)))
    assert bad.ok is False and "holds no LoRA weights" in bad.line
    assert lora_item(LoraEntry("gone", str(tmp_path / "gone.safetensors"))).ok is False


def test_the_safety_checker_present_missing_or_not_configured(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert safety_item(SafetyConfig(model="test-tiny")) == Result(True, "safety checker: test-tiny (built in code)")
    missing = safety_item(SafetyConfig(model="CompVis/stable-diffusion-safety-checker"))
    assert missing.ok is False and missing.line.startswith("safety checker: ") and "models download" in missing.line
    note = "frames are not checked; only banned words (set [safety] model)"
    assert safety_item(SafetyConfig()) == Result(True, f"safety checker: none configured; {note}")
    off = safety_item(SafetyConfig(model="test-tiny", enabled=False))
    assert off == Result(True, f"safety checker: test-tiny is off (enabled = false); {note}")
    assert safety_item(SafetyConfig(model="test-tiny"), with_engine=False).ok is None


def test_gpu_on_the_cpu_is_a_note():
    result = gpu_item(TINY)
    assert result.ok and "renders run on the CPU (cpu, float32, as [engine] device asks)" in result.line


def test_gpu_asked_for_where_there_is_none():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = gpu_item(dataclasses.replace(TINY, device="cuda"))
    assert result.ok is False and "PyTorch sees no CUDA GPU" in result.line


@pytest.mark.gpu
def test_gpu_names_the_device_and_dtype():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    result = gpu_item(dataclasses.replace(TINY, device="auto"))
    assert result.ok and result.line.startswith("GPU: cuda:0 (") and result.line.endswith("float16")


# -- Discord --------------------------------------------------------------------------------------
def settings(fake: FakeDiscord, **changes) -> DiscordConfig:
    return DiscordConfig(token=fake.token, api_base=fake.api_base, gateway_url=fake.gateway_url, **changes)


async def test_without_a_token_the_discord_checks_are_skipped():
    [result] = await discord_items(DiscordConfig())
    assert result.ok is None and "the Discord checks were skipped" in result.line


async def test_the_token_accepted_and_the_permissions_in_a_configured_guild(fake, world):
    token, guild = await discord_items(settings(fake, guild_ids=(world.guild_id,)))
    assert token == Result(True, f"Discord accepts the token: the bot is animabot (id {fake.bot_id})")
    assert guild == Result(
        True,
        f"guild Test Guild ({world.guild_id}): the bot has View Channel, Send Messages, Attach Files, "
        "Read Message History, Add Reactions",
    )
    assert fake.errors == []


async def test_a_token_discord_rejects(fake):
    [result] = await discord_items(DiscordConfig(token="wrong", api_base=fake.api_base))
    assert result.ok is False and "Discord rejected the bot token (401)" in result.line


async def test_discord_unreachable():
    [result] = await discord_items(DiscordConfig(token="t", api_base=closed_port_url() + "/api/v10"))
    assert result.ok is False and "Discord cannot be reached" in result.line


async def test_without_guild_ids_every_guild_of_the_bot_is_checked(fake, world):
    other = fake.add_guild("Other", everyone_permissions=DEFAULT_EVERYONE_PERMISSIONS & ~ATTACH_FILES)
    fake.add_channel(other, "renders")
    _, first, second = await discord_items(settings(fake))
    assert first.ok and f"({world.guild_id})" in first.line
    assert second == Result(
        False,
        f"guild Other ({other}): the bot lacks Attach Files; give its role these permissions "
        "(Server Settings → Roles), or invite it again with them.",
    )


async def test_a_channel_that_denies_the_bot_is_named(fake, world):
    renders = fake.add_channel(world.guild_id, "renders")
    await fake.deny(world.channel_id, ATTACH_FILES)
    _, guild = await discord_items(settings(fake, guild_ids=(world.guild_id,)))
    assert guild.ok and guild.line.endswith("; not in #general (Attach Files)")
    await fake.deny(renders, ATTACH_FILES)
    _, guild = await discord_items(settings(fake, guild_ids=(world.guild_id,)))
    assert guild.ok is False and "no text channel lets the bot post videos" in guild.line


async def test_a_guild_the_bot_is_not_in(fake, world):
    _, guild = await discord_items(settings(fake, guild_ids=(world.guild_id + 999,)))
    assert guild.ok is False and "the bot is not in it" in guild.line


def test_channel_overwrites_apply_everyone_then_roles_then_the_member():
    guild_id, role, bot = 1, 2, 3
    guild = {"id": "1", "owner_id": "9", "roles": [{"id": "1", "permissions": str(1 << 10 | 1 << 11)}]}
    base = guild_permissions(guild, [str(role)], bot)
    assert base == discord.Permissions(view_channel=True, send_messages=True)
    channel = {
        "permission_overwrites": [
            {"id": "1", "type": 0, "allow": "0", "deny": str(1 << 11)},  # @everyone may not send
            {"id": "2", "type": 0, "allow": str(1 << 11 | 1 << 15), "deny": "0"},  # the bot's role may
            {"id": "3", "type": 1, "allow": "0", "deny": str(1 << 15)},  # but the bot itself not attach
        ]
    }
    found = channel_permissions(base, channel, guild_id, [str(role)], bot)
    assert found == discord.Permissions(view_channel=True, send_messages=True)
    assert guild_permissions({**guild, "owner_id": "3"}, [], bot) == discord.Permissions.all()


# -- the command ----------------------------------------------------------------------------------
async def animabot_check(*args, cwd) -> tuple[int, str, str]:
    """``animabot check ARGS`` in a subprocess, while this loop serves the loopback Discord."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("DISCORD_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "check", *map(str, args),
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode, out.decode(), err.decode()


def write_config(path, fake: FakeDiscord, guild_id: int, **engine) -> None:
    keys = {"model": "test-tiny", "device": "cpu", **engine}
    path.write_text(
        'data_dir = "data"\n[engine]\n'
        + "".join(f'{key} = "{value}"\n' for key, value in keys.items())
        + f'[discord]\ntoken = "{fake.token}"\nguild_ids = [{guild_id}]\n'
        + f'api_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"\n'
    )


async def test_check_all_good_exits_0_with_a_line_per_item(fake, world, tmp_path):
    write_config(tmp_path / "host.toml", fake, world.guild_id)
    code, out, err = await animabot_check("--config", "host.toml", cwd=tmp_path)
    lines = out.splitlines()
    assert code == 0, out + err
    assert lines[0] == "✓ config: host.toml is valid"
    assert [line[0] for line in lines[:-1]] == ["✓"] * (len(lines) - 1), out
    for start in ("✓ data_dir", "✓ job store SQLite", "✓ ffmpeg: ", "✓ model default", "✓ GPU: ", "✓ safety checker: ",
                  "✓ Discord accepts"):  # fmt: skip
        assert any(line.startswith(start) for line in lines), out
    assert lines[-1] == "Ready to go live."


async def test_check_with_an_item_to_fix_exits_1(fake, world, tmp_path):
    write_config(tmp_path / "host.toml", fake, world.guild_id, device="cuda:7")
    code, out, _ = await animabot_check("--config", "host.toml", cwd=tmp_path)
    assert code == 1
    assert any(line.startswith("✗ GPU: device cuda:7") for line in out.splitlines()), out
    assert out.splitlines()[-1] == "1 item(s) to fix before going live."


async def test_check_with_a_config_that_does_not_load_exits_2(tmp_path):
    (tmp_path / "bad.toml").write_text("[engine]\nmax_batch = 'eight'\n")
    code, out, err = await animabot_check("--config", "bad.toml", "--no-engine", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.startswith("animabot: [engine] max_batch") and err.count("\n") == 1

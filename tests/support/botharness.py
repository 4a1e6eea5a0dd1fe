"""Shared pieces of the bot's end-to-end tests.

A loopback Discord (``tests/support/fakediscord``), a config pointing the bot at it with the ``test-tiny``
model, and the bot started through ``bot.cli.run.start_bot`` — the code path of ``animabot run`` —
inside the test's event loop. ``tests/conftest.py`` imports the fixtures (``bot``, ``config``,
``fake``, ``world``), so every test module can ask for them; the helpers that drive and read the
bot are imported from here, the waits from ``support.waiting`` and test media from ``support.media``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bot.cli.run import Running, start_bot
from engine.config import Config, DiscordConfig, EngineConfig, LimitsConfig
from engine.request.params import RenderParams
from support.fakediscord import FakeDiscord, MessageRecord, World, fake_discord

# Small renders keep the suite quick: /animate without `size` renders the [render] defaults.
RENDER = RenderParams(prompt="-", negative_prompt="", frames=2, fps=8, steps=2, width=128, height=128)
LIMITS = LimitsConfig(
    max_frames=12, max_steps=8, max_side=768, max_fps=24, daily_quota=50, max_queued_per_user=5, cooldown_seconds=0
)


def make_config(data_dir: Path, fake: FakeDiscord, world: World, **changes) -> Config:
    config = Config(
        data_dir=data_dir,
        engine=EngineConfig(model="test-tiny", device="cpu", compile=False),
        render=RENDER,
        limits=LIMITS,
        discord=DiscordConfig(
            token=fake.token, guild_ids=(world.guild_id,), api_base=fake.api_base, gateway_url=fake.gateway_url
        ),
    )
    return dataclasses.replace(config, **changes)


async def start(config: Config, **options) -> Running:
    """``animabot run``'s start-up, with the waits a loopback server does not need shortened."""
    options = {"guild_ready_timeout": 0.05, "identify_delay": 0.0, "poll_interval": 0.25, **options}
    return await start_bot(config, **options)


@pytest.fixture
async def fake():
    async with fake_discord() as fake:
        yield fake


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    return fake.default_world()


@pytest.fixture
def config(tmp_path: Path, fake: FakeDiscord, world: World) -> Config:
    return make_config(tmp_path / "data", fake, world)


@pytest.fixture
async def bot(config: Config, fake: FakeDiscord):
    running = await start(config)
    try:
        yield running
    finally:
        await running.stop()
        assert fake.errors == []


# -- driving and reading --------------------------------------------------------------------------
async def command(fake: FakeDiscord, name: str, options: dict | None = None, *, user_id: int, channel_id: int,
                  timeout: float = 15.0, **kwargs) -> MessageRecord:  # fmt: skip
    """Run a slash command and return the bot's (private) answer, after checking it deferred."""
    interaction = await fake.slash(name, options, user_id=user_id, channel_id=channel_id, **kwargs)
    response = await interaction.wait_response(timeout)
    assert response.type == 5 and response.ephemeral, "commands defer privately at once"
    [answer] = await interaction.wait_followups(1, timeout)
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


def job_id_in(text: str) -> int:
    match = re.search(r"[Qq]ueued job (\d+)", text)
    assert match, f"no job id in {text!r}"
    return int(match.group(1))


def progress_of(fake: FakeDiscord, channel_id: int, job_id: int) -> MessageRecord | None:
    """The bot's progress message for ``job_id`` (it has the job's Cancel button when posted)."""
    for message in fake.bot_messages(channel_id, include_deleted=True):
        if message.revisions and f"animabot:cancel:{job_id}" in _custom_ids(message.revisions[0].components):
            return message
    return None


def _custom_ids(components: list[dict]) -> list[str]:
    found = []
    for component in components:
        if "custom_id" in component:
            found.append(component["custom_id"])
        found.extend(_custom_ids(component.get("components", [])))
    return found


def modal_inputs(callback) -> dict[str, str]:
    """``custom_id → prefilled value`` of the text inputs of a modal callback (a form the bot opened)."""
    found, stack = {}, list(callback.data["components"])
    while stack:
        component = stack.pop()
        if component.get("type") == 4:
            found[component["custom_id"]] = component.get("value", "")
        stack.extend(component.get("components", []))
        stack.extend([component["component"]] if isinstance(component.get("component"), dict) else [])
    return found

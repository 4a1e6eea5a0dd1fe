"""Shared fixtures. The built-in ``test-tiny`` model is built once per test session into a
temporary cache (``ANIMABOT_CACHE``), which subprocesses started by tests inherit."""

import os
import tempfile

os.environ.setdefault("ANIMABOT_CACHE", tempfile.mkdtemp(prefix="animabot-cache-"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
from support.botharness import bot, config, fake, world  # noqa: F401 (the bot tests' fixtures, for every module)

from engine.config import EngineConfig

TINY = EngineConfig(model="test-tiny", device="cpu")


@pytest.fixture(scope="session")
def components():
    from engine.render.models import load_components

    return load_components(TINY)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if the bot sent any request Discord's OpenAPI description does not allow,
    in any test (the loopback Discord also answered each with 400/50035)."""
    from support.fakediscord.openapi import VIOLATIONS

    if VIOLATIONS:
        print("\nRequests that Discord's OpenAPI description does not allow:")
        for line in dict.fromkeys(VIOLATIONS):
            print(f"  {line}")
        session.exitstatus = 1

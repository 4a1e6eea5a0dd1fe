"""Shared fixtures. The built-in ``test-tiny`` model is built once per test session into a
temporary cache (``ANIMABOT_CACHE``), which subprocesses started by tests inherit."""

import atexit
import os
import shutil
import tempfile

if "ANIMABOT_CACHE" not in os.environ:  # a cache of this run's own, removed when it ends
    os.environ["ANIMABOT_CACHE"] = tempfile.mkdtemp(prefix="animabot-cache-")
    atexit.register(shutil.rmtree, os.environ["ANIMABOT_CACHE"], ignore_errors=True)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
from support.botharness import bot, config, fake, world  # noqa: F401 (the bot tests' fixtures, for every module)

from engine.config import EngineConfig

TINY = EngineConfig(model="test-tiny", device="cpu")


@pytest.fixture(scope="session")
def components():
    from engine.render.weights.models import load_components

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


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the whole session (``initdb`` takes seconds); each test
    takes a database of its own with ``pg_cluster.new_database()``. Skipped where no server is
    installed, unless ``ANIMABOT_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it): then that fails."""
    from support.postgres import PostgresCluster, server_bin

    folder = server_bin()
    if folder is None:
        if os.environ.get("ANIMABOT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is not installed (apt-get install -y postgresql)")
        pytest.skip("PostgreSQL is not installed")
    cluster = PostgresCluster(folder).start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path):
    """Where a job store lives, once per backend: a SQLite file, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "db" / "jobs.sqlite3"
    return request.getfixturevalue("pg_cluster").new_database()

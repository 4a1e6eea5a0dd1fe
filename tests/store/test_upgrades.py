"""Upgrades keep every job: stores written by earlier releases' own code, opened by today's.

The fixtures (``fixtures/``, written by ``fixtures/make_fixtures.py`` with each release's code) hold
job 1 rendered and delivered (its progress and result posts recorded), job 2 queued (and from
56eb7cc job 3, queued from a picture), and one guild's limits. Each test opens a copy the way that
release's host did: the working folder holds ``data``, the default ``data_dir``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.guild_limits import get_limits
from engine.config import Config, EngineConfig, LimitsConfig
from engine.errors import UserError
from engine.runtime.worker import Runtime
from engine.store.jobs import Job, JobKind, JobStatus
from engine.store.schema import SCHEMA_VERSION
from engine.store.store import JobStore
from engine.video.read import probe, read_recipe

FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = ["a6a6ded-sqlite", "56eb7cc-sqlite", "56eb7cc-postgresql"]
QUEUED = {"a6a6ded-sqlite": [2], "56eb7cc-sqlite": [2, 3], "56eb7cc-postgresql": [2, 3]}

# What make_fixtures.py wrote.
GUILD, CHANNEL = 424242424242424242, 515151515151515151
USER_DONE, USER_QUEUED = 600000000000000001, 600000000000000002
PROGRESS_POST, RESULT_POST = 700000000000000001, 700000000000000002


@dataclass
class Host:
    release: str
    config: Config
    store: JobStore


def _restore(cluster, dump: Path) -> str:
    """A new database of ``cluster`` holding ``dump`` (plain SQL, as ``pg_dump`` wrote it); its URL."""
    url = cluster.new_database()
    psql = cluster.bin / "psql" if (cluster.bin / "psql").exists() else "psql"
    subprocess.run(
        [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(dump)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return url


async def _result_file(host: Host, ref: str) -> Path:
    """The result video as this host reaches it: a key through the database's blobs (PostgreSQL), or
    the path the release recorded, relative to the host's working folder (SQLite)."""
    if host.store.dialect == "postgresql":
        return await host.store.blobs.fetch(ref)
    return Path(ref)


@pytest.fixture(params=RELEASES)
async def host(request, tmp_path, monkeypatch):
    """Today's store on a copy of a release's store, opened from the host's working folder."""
    release = request.param
    monkeypatch.chdir(tmp_path)
    if release.endswith("-postgresql"):
        location = _restore(request.getfixturevalue("pg_cluster"), FIXTURES / f"{release}.sql")
    else:
        shutil.copytree(FIXTURES / release / "data", tmp_path / "data")
        location = Path("data/animabot.sqlite3")
    config = Config(data_dir=Path("data"), engine=EngineConfig(model="test-tiny", device="cpu"))
    store = await JobStore.open(location, data_dir=config.data_dir)
    yield Host(release, config, store)
    await store.close()


async def test_the_store_is_at_this_codes_version_with_the_job_fields_as_columns(host):
    if host.store.dialect == "postgresql":
        [row] = await host.store._db.execute_fetchall("SELECT version FROM animabot_schema")
        columns = await host.store._db.execute_fetchall(
            "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'jobs' "
            "ORDER BY ordinal_position"
        )
    else:
        [row] = await host.store._db.execute_fetchall("SELECT user_version AS version FROM pragma_user_version")
        columns = await host.store._db.execute_fetchall("PRAGMA table_info(jobs)")
    assert row["version"] == SCHEMA_VERSION
    assert [column["name"] for column in columns] == [field.name for field in dataclasses.fields(Job)]


async def test_the_queued_jobs_are_claimed_and_rendered(host):
    queued = QUEUED[host.release]
    assert [job.id for job in await host.store.active_jobs()] == queued
    runtime = Runtime(host.config, host.store)
    await runtime.start()
    try:
        runtime.notify()
        await asyncio.wait_for(runtime.drain(), 120)
    finally:
        await runtime.stop()
    for job_id in queued:
        job = await host.store.get(job_id)
        assert (job.status, job.frames_done, job.error) == (JobStatus.DONE, 3, None)
        video = await _result_file(host, job.result_path)
        assert (probe(video).frames, probe(video).width) == (3, 64)
        assert read_recipe(video)["params"]["prompt"] == job.params.prompt


async def test_the_done_job_keeps_its_posts_and_its_video(host):
    job = await host.store.get(1)
    assert (job.status, job.user_id, job.guild_id, job.origin_id) == (JobStatus.DONE, USER_DONE, GUILD, CHANNEL)
    assert (job.progress_post_id, job.result_post_id) == (PROGRESS_POST, RESULT_POST)
    assert await host.store.find_by_post(RESULT_POST) == job  # the 🔄 and buttons on its post find it
    assert await host.store.undelivered() == []  # a restart does not post it again
    video = await _result_file(host, job.result_path)
    assert (probe(video).frames, probe(video).width) == (3, 64)
    if host.release.startswith("56eb7cc"):  # the recipe inside videos came with 56eb7cc
        assert read_recipe(video)["params"]["prompt"] == "a cat"


async def test_the_done_jobs_video_is_found_through_the_stores_blobs(host):
    job = await host.store.get(1)
    assert await host.store.blobs.fetch(job.result_path) is not None


async def test_a_re_roll_of_the_done_job_is_queued_with_a_new_id(host):
    parent = await host.store.get(1)
    again = await host.store.enqueue(
        JobKind.REROLL, parent.params.with_seed(None), user_id=USER_DONE, guild_id=GUILD, origin_id=CHANNEL,
        parent_id=parent.id,
    )  # fmt: skip
    assert again.id == max(QUEUED[host.release]) + 1  # ids are never reused
    assert again.status is JobStatus.QUEUED and again.params.prompt == "a cat"


async def test_the_guild_limits_are_kept(host):
    assert await host.store.get_settings(GUILD) == {
        "max_frames": 24,
        "daily_quota": 5,
        "allowed_channel_ids": [CHANNEL],
    }
    limits = await get_limits(host.store, GUILD, defaults=LimitsConfig())
    assert (limits.max_frames, limits.daily_quota, limits.allowed_channel_ids) == (24, 5, (CHANNEL,))
    assert limits.max_steps == LimitsConfig().max_steps


def _schema(path: Path) -> dict:
    with sqlite3.connect(path) as db:
        return {
            row[0]: (
                row[1],
                [tuple(c) for c in db.execute(f"PRAGMA table_info({row[0]})")] if row[1] == "table" else row[2],
            )
            for row in db.execute("SELECT name, type, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        }


async def test_a_version_2_folder_is_copied_aside_then_migrated_to_the_schema_of_a_new_store(tmp_path, caplog):
    shutil.copytree(FIXTURES / "a6a6ded-sqlite" / "data", tmp_path / "data")
    path = tmp_path / "data" / "animabot.sqlite3"
    with caplog.at_level(logging.WARNING, logger="engine.store.schema"):
        await (await JobStore.open(path)).close()
    await (await JobStore.open(tmp_path / "new.sqlite3")).close()
    assert _schema(path) == _schema(tmp_path / "new.sqlite3")
    copy = tmp_path / "data" / "animabot.sqlite3.bak-v2"
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT id, status FROM jobs ORDER BY id").fetchall() == [(1, "done"), (2, "queued")]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"copied to {copy} before upgrading it to version {SCHEMA_VERSION}" in line


async def test_a_folder_whose_copy_cannot_be_written_is_left_as_it_was(tmp_path):
    shutil.copytree(FIXTURES / "a6a6ded-sqlite" / "data", tmp_path / "data")
    (tmp_path / "data" / "animabot.sqlite3.bak-v2" / "in-the-way").mkdir(parents=True)
    with pytest.raises(
        UserError, match=r"^Could not copy the job store .* aside before upgrading it \(.*\); make room"
    ):
        await JobStore.open(tmp_path / "data" / "animabot.sqlite3")
    with sqlite3.connect(tmp_path / "data" / "animabot.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert not list((tmp_path / "data").glob("*.partial"))


async def test_a_store_at_this_codes_version_is_not_copied(tmp_path):
    for _ in range(2):
        await (await JobStore.open(tmp_path / "data" / "animabot.sqlite3")).close()
    assert not list((tmp_path / "data").glob("*.bak-*"))

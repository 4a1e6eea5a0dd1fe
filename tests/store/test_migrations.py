"""The job store's schema: its columns, idempotent migrations, and old databases upgraded with
their data."""

from __future__ import annotations

import dataclasses
import sqlite3

from engine.store.jobs import Job
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION
from engine.store.store import JobStore


# -- schema -----------------------------------------------------------------------------------------
async def test_columns_are_the_job_fields_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    for _ in range(2):
        store = await JobStore.open(path)
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns == [f.name for f in dataclasses.fields(Job)]


async def test_a_version_1_database_is_upgraded_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO jobs (kind, user_id, created_at, status, worker) VALUES ('mux', 7, 1.0, 'running', 'old')"
        )
    store = await JobStore.open(path)
    try:
        assert (await store.get(1)).user_id == 7
        # The old worker never sent a heartbeat: its job counts as orphaned.
        assert await store.requeue_running(stale_after=30) == [1]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_version_2_database_keeps_its_posts_and_limits_in_the_neutral_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0] + MIGRATIONS[1]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            """INSERT INTO jobs (kind, user_id, created_at, status, channel_id, progress_post_id, result_post_id)
               VALUES ('mux', 7, 1.0, 'done', 55, 1001, 1002)"""
        )
        db.execute(
            """INSERT INTO guild_limits (guild_id, max_frames, daily_quota, allowed_channel_ids, updated_at)
               VALUES (1, 24, 0, '[10, 11]', 5.0), (2, NULL, NULL, NULL, 6.0)"""
        )
    async with await JobStore.open(path) as store:
        job = await store.get(1)
        assert (job.origin_id, job.progress_post_id, job.result_post_id) == (55, 1001, 1002)
        assert await store.find_by_post(1002) == job
        assert await store.get_settings(1) == {"max_frames": 24, "daily_quota": 0, "allowed_channel_ids": [10, 11]}
        assert await store.get_settings(2) == {}
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        updated = db.execute("SELECT guild_id, updated_at FROM guild_settings ORDER BY guild_id").fetchall()
    assert "guild_limits" not in tables and "guild_settings" in tables
    assert {"jobs_by_progress_post", "jobs_by_result_post"} <= indexes
    assert not {"jobs_by_progress_message", "jobs_by_result_message"} & indexes
    assert updated == [(1, 5.0), (2, 6.0)]

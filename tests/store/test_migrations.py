"""The job store's schema: its columns and idempotent migrations. Upgrades from databases that earlier
releases wrote are in ``test_upgrades.py`` (they replace tests that built "old" databases from
today's migrations, which hid an edited released migration)."""

from __future__ import annotations

import dataclasses
import sqlite3

from engine.store.jobs import Job
from engine.store.schema import SCHEMA_VERSION
from engine.store.store import JobStore


# -- schema -----------------------------------------------------------------------------------------
async def test_columns_are_the_job_fields_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    for _ in range(2):
        store = await JobStore.open(path)
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns == [f.name for f in dataclasses.fields(Job)]

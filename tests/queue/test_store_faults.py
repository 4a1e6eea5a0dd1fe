"""PostgreSQL faults: a killed connection is replaced without the caller noticing; an unreachable
database is a readable ``StoreUnavailable`` within 3 s; a schema migrated by many at once, once."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from engine.queue.db import StoreUnavailable
from engine.queue.jobs import Job, JobKind
from engine.queue.schema import SCHEMA_VERSION
from engine.queue.store import JobStore
from engine.render.params import RenderParams

PARAMS = RenderParams(prompt="a cat", frames=4, seed=1, width=64, height=64)


@pytest.fixture
async def pg(pg_cluster, tmp_path):
    url = pg_cluster.new_database()
    async with await JobStore.open(url, data_dir=tmp_path / "data") as store:
        yield pg_cluster, url.rpartition("/")[2], store


async def test_a_terminated_connection_is_replaced_and_the_call_succeeds(pg):
    cluster, name, store = pg
    job = await store.enqueue(JobKind.ANIMATE, PARAMS, user_id=1)
    assert cluster.terminate_connections(name) >= 1
    assert (await store.get(job.id)).id == job.id  # a read, retried on a fresh connection
    assert (await store.claim("w")).id == job.id  # a write too


async def test_an_unreachable_database_is_a_readable_error_within_3_s(pg):
    cluster, name, store = pg
    cluster.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    cluster.terminate_connections(name)
    try:
        for call in (store.enqueue(JobKind.ANIMATE, PARAMS, user_id=1), store.usage(1, 1), store.claim("w")):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="The queue is unavailable for the moment"):
                await call
            assert time.monotonic() - started < 3.0
    finally:
        cluster.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert await store.usage(1, 1) is not None  # and back once it is reachable


async def test_stores_opening_a_new_database_at_once_migrate_it_once(pg_cluster):
    url = pg_cluster.new_database()
    stores = await asyncio.gather(*(JobStore.open(url) for _ in range(4)))
    try:
        name = url.rpartition("/")[2]
        assert pg_cluster.psql("SELECT version FROM animabot_schema", name) == str(SCHEMA_VERSION)
        columns = pg_cluster.psql(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_name = 'jobs'",
            name,
        )
        assert columns.split(",") == [f.name for f in dataclasses.fields(Job)]
    finally:
        await asyncio.gather(*(store.close() for store in stores))

"""The ``store`` fixture of the job store tests."""

import pytest

from engine.store.store import JobStore


@pytest.fixture
async def store(store_location, tmp_path):
    """A store on each backend (``store_location`` is parametrised: SQLite, PostgreSQL)."""
    async with await JobStore.open(store_location, data_dir=tmp_path / "data") as store:
        yield store

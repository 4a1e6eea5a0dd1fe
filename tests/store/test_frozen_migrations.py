"""Released migrations are frozen: the text of each one that a release shipped is pinned here by its
sha256, so a database that release wrote is upgraded by the statements it was tested with.

A migration added after the last release is not in the table yet; when a release ships it, add its
hash (``migration_hash`` of its statements). Never change a row: change the schema with a new migration.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from engine.store.schema import MIGRATIONS
from engine.store.schema_pg import POSTGRES_MIGRATIONS

# (dialect, number) -> sha256 of the statements as released on 2026-12-02 (56eb7cc); numbers 1 and 2
# of SQLite were first released on 2026-11-26 (a6a6ded), 2 with this text, 1 with another text
# (75c95eaf5a240b0e...): see engine.store.schema's docstring for how both histories are upgraded.
RELEASED = {
    ("sqlite", 1): "1267ac0cfdb836dd9703f58baaed98f9f2c4f4d103d8c2e64e73ba7e3f7a624c",
    ("sqlite", 2): "cbed6c16026a0edd0b167ddb7ffcf0f57cc7b3a533562097fc5743e7118f89ac",
    ("sqlite", 3): "db3fe5f21ff4709eace699191246c929645545477bcbf3df156d0792c3cf7601",
    ("sqlite", 4): "1dec686c2cc5073f545056aafab1f5cde987d280b6e1d101f7d3c6891e74f35b",
    ("sqlite", 5): "6254e90062c0b40a48a9b56d92dbaf3f6f9d964923b3e916e405ffc4ddc9f00d",
    # 6 (jobs.safety) and 7 (pictures per guild): on main since 2026-12-07
    ("sqlite", 6): "29134d2e70c4fd78c4d0e6e6812e03730f77d8122516c327e91bd3ddbfeffb83",
    ("sqlite", 7): "1a04ec66ef42c7f6ec78695a35e586ad57bc3e38cb7d223e349858f6fc6b165d",
    ("postgresql", 1): "0cd189b52806686bc6e13b0332bc17d4ca59a56e767b451f275501dc741a6a71",
    ("postgresql", 2): "67b977b934694a820334f4c7865aba16a194906c789fb7a5c823d8270cebec4f",
    ("postgresql", 3): "52503009d7df01b55055d3f307e98bd09c983a80a7b350e082274b5b1884fb1d",
    ("postgresql", 4): "bfb47d6c53def2474ec861227c9125468598224fd5687e321ede5f4705816924",
    ("postgresql", 5): "21468ec85a3c4087bf8d78cd787086c0b8cf5db4a492547622ae698c750f0877",
    ("postgresql", 6): "29134d2e70c4fd78c4d0e6e6812e03730f77d8122516c327e91bd3ddbfeffb83",
    ("postgresql", 7): "e416099cda26918faa3da6c3cfb3ffed2445c80b91285777570a0a9b10c67f6d",
}
MIGRATIONS_OF = {"sqlite": MIGRATIONS, "postgresql": POSTGRES_MIGRATIONS}
SOURCE_OF = {"sqlite": "engine/store/schema.py", "postgresql": "engine/store/schema_pg.py"}


def migration_hash(statements: tuple[str, ...]) -> str:
    """The sha256 of a migration's statements, exactly as written (whitespace included), in order."""
    return hashlib.sha256(json.dumps(list(statements)).encode()).hexdigest()


@pytest.mark.parametrize(("dialect", "number"), sorted(RELEASED))
def test_a_released_migration_is_never_edited(dialect, number):
    migrations = MIGRATIONS_OF[dialect]
    assert number <= len(migrations), (
        f"released migration {number} ({dialect}) is gone from {SOURCE_OF[dialect]}; "
        "migrations are frozen once released: add a new one instead"
    )
    assert migration_hash(migrations[number - 1]) == RELEASED[dialect, number], (
        f"released migration {number} ({dialect}, {SOURCE_OF[dialect]}) was edited; migrations are frozen "
        "once released (databases out there ran the released text): put it back and add a new migration instead"
    )

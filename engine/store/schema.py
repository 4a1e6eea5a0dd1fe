"""The job store's schema as numbered migrations, tracked with ``PRAGMA user_version``.

Migration N (1-based) brings a database from version N-1 to N. Never edit a released migration:
append a new one (``ALTER TABLE ... ADD COLUMN`` and the like), here for SQLite and in
``engine.store.schema_pg`` for PostgreSQL, with the same meaning. Their texts are frozen by a test
(``tests/store/test_frozen_migrations.py``), and databases written by earlier releases' own code are
upgraded in ``tests/store/test_upgrades.py``.

One released migration was edited once anyway, and both of its texts are out there: migration 1 as
released on 2026-11-26 (``a6a6ded``) named two columns ``progress_message_id`` and
``result_message_id``; on 2026-12-01 (``ee2c57a``) it was changed to create them under the names
migration 3 gives them, which left migration 3 renaming them to themselves. Neither text changes
again: a database that migration 1 made under the old names gets migration 3's two renames just
before migration 3 (:data:`BEFORE_SQLITE`), which then finds the names it expects. PostgreSQL arrived
after the edit and has one history.

A SQLite store older than this code is first copied aside (``animabot.sqlite3.bak-v2``).
"""

from __future__ import annotations

import logging
import os
import sqlite3

from engine.errors import UserError

log = logging.getLogger(__name__)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: jobs (columns = the fields of engine.store.jobs.Job, as renamed by 3), per-guild limit overrides,
    # fair-order turns.
    (
        # AUTOINCREMENT: ids are never reused after old rows are deleted, so a button or command
        # carrying an old job id can never act on a newer job.
        """
        CREATE TABLE jobs (
            id                  INTEGER PRIMARY KEY AUTOINCREMENT,
            kind                TEXT    NOT NULL CHECK (kind IN ('animate', 'reroll', 'mux')),
            status              TEXT    NOT NULL DEFAULT 'queued'
                                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            params              TEXT,               -- JSON of RenderParams.to_dict(); NULL for mux
            seed                INTEGER,
            guild_id            INTEGER,
            channel_id          INTEGER,
            user_id             INTEGER NOT NULL,
            parent_id           INTEGER,
            audio_path          TEXT,
            frames_done         INTEGER NOT NULL DEFAULT 0,
            frames_total        INTEGER NOT NULL DEFAULT 0,
            preview_path        TEXT,
            result_path         TEXT,
            error               TEXT,
            eta_seconds         REAL,
            cancel_requested    INTEGER NOT NULL DEFAULT 0,
            progress_post_id INTEGER,
            result_post_id   INTEGER,
            worker              TEXT,
            attempts            INTEGER NOT NULL DEFAULT 0,
            created_at          REAL    NOT NULL,
            started_at          REAL,
            finished_at         REAL
        )
        """,
        "CREATE INDEX jobs_by_status ON jobs (status, kind, id)",
        "CREATE INDEX jobs_by_user ON jobs (guild_id, user_id, created_at)",
        "CREATE INDEX jobs_by_finish ON jobs (finished_at)",
        "CREATE INDEX jobs_by_progress_message ON jobs (progress_post_id)",
        "CREATE INDEX jobs_by_result_message ON jobs (result_post_id)",
        # One row per guild that changed a limit; NULL means "the configured default".
        """
        CREATE TABLE guild_limits (
            guild_id            INTEGER PRIMARY KEY,
            max_frames          INTEGER,
            max_steps           INTEGER,
            max_side            INTEGER,
            max_fps             INTEGER,
            daily_quota         INTEGER,
            max_queued_per_user INTEGER,
            cooldown_seconds    INTEGER,
            upload_limit_bytes  INTEGER,
            allowed_channel_ids TEXT,               -- JSON list of channel ids
            updated_at          REAL
        )
        """,
        # The fair order: when each user was last served in each lane ('render' or 'mux'). `turn`
        # grows by one with every claim, so "served longest ago" is exact even when two claims
        # read the same clock.
        """
        CREATE TABLE claim_turns (
            user_id INTEGER NOT NULL,
            lane    TEXT    NOT NULL CHECK (lane IN ('render', 'mux')),
            turn    INTEGER NOT NULL,
            PRIMARY KEY (user_id, lane)
        )
        """,
    ),
    # 2: worker heartbeats, so a starting worker re-queues only the jobs of workers that are gone
    # (not those of a live worker beside it on another GPU).
    (
        """
        CREATE TABLE workers (
            name    TEXT PRIMARY KEY,
            seen_at REAL NOT NULL
        )
        """,
    ),
    # 3: neutral words in the job table (where a request came from, the posts that show it), and
    # per-guild settings as one JSON object that the store keeps without knowing its keys.
    (
        "ALTER TABLE jobs RENAME COLUMN channel_id TO origin_id",
        "ALTER TABLE jobs RENAME COLUMN progress_post_id TO progress_post_id",
        "ALTER TABLE jobs RENAME COLUMN result_post_id TO result_post_id",
        "DROP INDEX jobs_by_progress_message",
        "DROP INDEX jobs_by_result_message",
        "CREATE INDEX jobs_by_progress_post ON jobs (progress_post_id)",
        "CREATE INDEX jobs_by_result_post ON jobs (result_post_id)",
        """
        CREATE TABLE guild_settings (
            guild_id   INTEGER PRIMARY KEY,
            data       TEXT NOT NULL,               -- JSON object: setting name -> value
            updated_at REAL
        )
        """,
        # json_patch drops the members whose value is NULL (RFC 7396), so only the overrides a
        # guild made are copied; allowed_channel_ids was JSON text and becomes a JSON list.
        """
        INSERT INTO guild_settings (guild_id, data, updated_at)
        SELECT guild_id,
               json_patch('{}', json_object(
                   'max_frames', max_frames, 'max_steps', max_steps, 'max_side', max_side, 'max_fps', max_fps,
                   'daily_quota', daily_quota, 'max_queued_per_user', max_queued_per_user,
                   'cooldown_seconds', cooldown_seconds, 'upload_limit_bytes', upload_limit_bytes,
                   'allowed_channel_ids', json(allowed_channel_ids))),
               updated_at
        FROM guild_limits
        """,
        "DROP TABLE guild_limits",
    ),
    # 4: leases with fencing tokens (a claim's token; every write a worker makes for the job carries
    # it and is refused once the job was claimed again), the frames a job had when claimed and how
    # many attempts ended without a new saved frame (only those count towards giving up), and
    # blobs (bytes by key; used where the data folder is not shared, see engine.store.blobs).
    (
        "ALTER TABLE jobs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN lease_expires_at REAL",
        "ALTER TABLE jobs ADD COLUMN claimed_frames INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN stalled_attempts INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX jobs_by_lease ON jobs (status, lease_expires_at)",
        """
        CREATE TABLE blobs (
            key        TEXT PRIMARY KEY,
            job_id     INTEGER,
            size       INTEGER NOT NULL,
            data       BLOB    NOT NULL,
            created_at REAL    NOT NULL
        )
        """,
        "CREATE INDEX blobs_by_job ON blobs (job_id)",
    ),
    # 5: what the front end needs to answer a job's requester later (an opaque handle, e.g. a reply
    # token, and when it was given), and results it holds back instead of posting (with why), so
    # a result that cannot be posted is neither retried on every start nor forgotten.
    (
        """
        CREATE TABLE job_replies (
            job_id    INTEGER PRIMARY KEY,
            handle    TEXT,                         -- opaque to the store
            handle_at REAL,
            held      TEXT,                         -- why the result is held back; NULL: not held
            held_at   REAL
        )
        """,
    ),
    # 6: the content policy a job was requested under ('off', 'block' or 'spoiler'; the front end decides it
    # where the request was made), so the worker knows whether to check its start picture and frames.
    ("ALTER TABLE jobs ADD COLUMN safety TEXT NOT NULL DEFAULT 'off'",),
    # 7: the guilds each start picture belongs to (engine.store.pictures): one row per guild that
    # sent it, renewed only by that guild's jobs. The pictures of jobs already queued or kept
    # belong to those jobs' guilds.
    (
        """
        CREATE TABLE pictures (
            key      TEXT    NOT NULL,              -- RenderParams.image_key: the sha256 of the fitted PNG
            guild_id INTEGER NOT NULL,
            used_at  REAL    NOT NULL,              -- sent, or last queued with, in this guild
            PRIMARY KEY (key, guild_id)
        )
        """,
        """
        INSERT INTO pictures (key, guild_id, used_at)
        SELECT json_extract(params, '$.image_key'), guild_id, MAX(created_at)
        FROM jobs
        WHERE guild_id IS NOT NULL AND json_valid(params) AND json_extract(params, '$.image_key') IS NOT NULL
        GROUP BY json_extract(params, '$.image_key'), guild_id
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
MIGRATION_LOCK = 0x616E696D  # "anim": the advisory lock PostgreSQL migrations run under


async def migrate(db) -> int:
    """Apply the pending migrations of ``db``'s dialect (an ``engine.store.db`` database); the version.

    The version is read again inside the migrating transaction, under ``BEGIN IMMEDIATE`` on SQLite
    and an advisory lock on PostgreSQL, so processes opening a new database at once migrate it once.
    A SQLite file at an older version is copied aside first (:func:`_copy_aside`).
    """
    if db.dialect == "postgresql":
        return await db.run(_migrate_postgres)
    await _copy_aside(db)
    return await db.run(_migrate_sqlite)


async def schema_version(db) -> int:
    """The schema version ``db`` is at (0: new), read without migrating it (``animabot check``)."""
    if db.dialect == "postgresql":
        rows = await db.execute_fetchall("SELECT to_regclass('animabot_schema') IS NOT NULL AS made")
        if not rows[0]["made"]:
            return 0
        rows = await db.execute_fetchall("SELECT version FROM animabot_schema")
        return rows[0]["version"] if rows else 0
    return (await db.execute_fetchall("PRAGMA user_version"))[0][0]


async def _copy_aside(db) -> None:
    """Before an older SQLite store is migrated: a copy of it as ``<file>.bak-v<its version>``, and one
    log line. A new (version 0) or current file, or one in memory, is not copied."""
    version = (await db.execute_fetchall("PRAGMA user_version"))[0][0]
    if db.path is None or not 0 < version < SCHEMA_VERSION:
        return
    partial = db.path.with_name(f"{db.path.name}.bak-{os.getpid()}.partial")
    try:
        partial.unlink(missing_ok=True)
        copied = await db.copy_to(partial)
        if copied < SCHEMA_VERSION:  # else another process has migrated it meanwhile (and copied it first)
            copy = db.path.with_name(f"{db.path.name}.bak-v{copied}")
            os.replace(partial, copy)
            log.warning(
                "job store %s is at schema version %d: copied to %s before upgrading it to version %d",
                db.path,
                copied,
                copy,
                SCHEMA_VERSION,
            )
    except (OSError, sqlite3.Error) as err:
        raise UserError(
            f"Could not copy the job store {db.path} aside before upgrading it ({err}); "
            "make room or allow writing in its folder, then start again."
        ) from None
    finally:
        partial.unlink(missing_ok=True)


async def _rename_released_columns(tx) -> None:
    """Migration 3's renames for a database made by migration 1 as released on 2026-11-26 (see the
    module's docstring); nothing for one made by migration 1 as it reads now."""
    columns = {row[1] for row in await tx.execute_fetchall("PRAGMA table_info(jobs)")}
    for old, new in (("progress_message_id", "progress_post_id"), ("result_message_id", "result_post_id")):
        if old in columns:
            await tx.execute(f"ALTER TABLE jobs RENAME COLUMN {old} TO {new}")
            log.info("job store: column %s (migration 1 of 2026-11-26) renamed to %s for migration 3", old, new)


# Repairs run just before migration N, for databases whose earlier history differs from the
# migrations' texts today; each finds out itself whether the database needs it.
BEFORE_SQLITE = {3: _rename_released_columns}


def _check(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this code's {SCHEMA_VERSION}; update animabot"
        )


async def _migrate_sqlite(tx) -> int:
    version = (await tx.execute_fetchall("PRAGMA user_version"))[0][0]
    _check(version)
    for number in range(version + 1, SCHEMA_VERSION + 1):
        if number in BEFORE_SQLITE:
            await BEFORE_SQLITE[number](tx)
        for statement in MIGRATIONS[number - 1]:
            await tx.execute(statement)
        await tx.execute(f"PRAGMA user_version = {number:d}")
        log.info("job store migrated to schema version %d", number)
    return SCHEMA_VERSION


async def _migrate_postgres(tx) -> int:
    from engine.store.schema_pg import POSTGRES_MIGRATIONS

    await tx.lock(MIGRATION_LOCK)
    await tx.execute("CREATE TABLE IF NOT EXISTS animabot_schema (version INTEGER NOT NULL)")
    rows = await tx.execute_fetchall("SELECT version FROM animabot_schema")
    if not rows:
        await tx.execute("INSERT INTO animabot_schema (version) VALUES (0)")
    version = rows[0]["version"] if rows else 0
    _check(version)
    for number in range(version + 1, SCHEMA_VERSION + 1):
        for statement in POSTGRES_MIGRATIONS[number - 1]:
            await tx.execute(statement)
        await tx.execute("UPDATE animabot_schema SET version = ?", (number,))
        log.info("job store migrated to schema version %d (PostgreSQL)", number)
    return SCHEMA_VERSION

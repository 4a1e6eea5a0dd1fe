"""The two databases the job store runs on, behind one small connection interface.

The store writes plain ``?``-parameterised SQL once; a :class:`Database` runs it:

* :class:`SqliteDatabase`: one aiosqlite connection in WAL mode. Every write transaction runs under
  ``BEGIN IMMEDIATE`` (processes sharing the file wait for each other up to ``BUSY_TIMEOUT_MS``) and
  an ``asyncio.Lock`` keeps concurrent coroutines of one process from interleaving theirs.
* :class:`PostgresDatabase`: a psycopg 3 connection pool (libpq honours ``PGPASSWORD``,
  ``PGSSLMODE`` and the other ``PG*`` variables); ``?`` becomes ``%s``. Connections that die (the
  server restarted, ``pg_terminate_backend``) are dropped by the pool and the work is retried with
  backoff for ``RETRY_SECONDS``; after that :class:`StoreUnavailable` (a ``UserError``) says so.
  ``LISTEN``/``NOTIFY`` carry "something changed" between processes and hosts.

Both hand a transaction object with ``execute_fetchall(sql, args)`` and ``execute(sql, args)``
(what aiosqlite's connection offers), rows readable by column name and as a mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from engine.errors import DiskFull, UserError
from engine.ops import metrics

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
BUSY_RETRY_SECONDS = 60  # how long a write transaction is tried again while another process holds the file
RETRY_SECONDS = 2.0  # how long one store call keeps retrying a lost connection (the bot answers within 3 s)
CONNECT_TIMEOUT_SECONDS = 2
CHANNEL = "animabot_jobs"  # the LISTEN/NOTIFY channel

Listener = Callable[[str], None]
T = TypeVar("T")


class StoreUnavailable(UserError):
    """The database cannot be reached right now (its text is what a member reads)."""

    def __init__(self) -> None:
        super().__init__("The queue is unavailable for the moment; please try again in a minute.")


class StoreFault(UserError):
    """The job store cannot be opened on this host (a damaged file, a folder in its place, no right
    to write): its text says which and what to do. ``animabot run``, ``render`` and ``check`` all
    print it as it is and exit with status 2."""


def writable_folder(folder: str | os.PathLike) -> Path:
    """``folder`` (the data folder), made if missing, once this process has written a file in it;
    else a :class:`StoreFault` saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (FileExistsError, NotADirectoryError):
        culprit = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise StoreFault(
            f"data_dir {folder} cannot be a folder because {culprit} is a file; "
            "set data_dir in the config to a folder, or move that file away."
        ) from None
    except OSError as err:
        raise StoreFault(
            f"data_dir {folder} is not writable ({err.strerror or err}); "
            "let this user write there, or set data_dir in the config to a writable folder."
        ) from None
    return folder


def sqlite_fault(path: Path, err: BaseException) -> StoreFault:
    """The sentence for ``err``, raised opening (or first reading) the SQLite file ``path``."""
    if path.is_dir():
        return StoreFault(
            f"The job store's file {path} is a folder; move that folder away, or set data_dir to another folder."
        )
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
        return StoreFault(
            f"The job store {path} is damaged or not a SQLite database ({err}); move it aside to start with an "
            "empty queue, or put back a copy of it (such as an animabot.sqlite3.bak-vN beside it)."
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return StoreFault(
            f"The job store {path} cannot be read and written by this user; "
            "fix its owner or permissions, or set data_dir to another folder."
        )
    return StoreFault(
        f"The job store {path} cannot be opened ({err}); "
        f"check that this user can write both it and its folder {path.parent}."
    )


class StoreFull(StoreUnavailable, DiskFull):
    """The database cannot take a write: its disk is full (SQLite's "database or disk is full",
    PostgreSQL's ``disk_full``). Waited out like an outage; a member reads that the disk is full."""

    def __init__(self) -> None:
        DiskFull.__init__(self)


BACKOFF_SECONDS = (0.5, 1, 2, 4, 8)  # waits between tries of work that must wait out an outage


def backoff(failures: int) -> float:
    """The wait before trying the unreachable store again, after ``failures`` tries."""
    return BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]


async def until_reachable(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``await call()`` until the store answers: work that must not be dropped in an outage (the
    end of a job, the inputs of a claimed one). A warning names ``what`` at each try."""
    failures = 0
    while True:
        try:
            return await call()
        except StoreUnavailable as err:  # a full database too: it takes the write once space is freed
            delay = backoff(failures)
            failures += 1
            metrics.STORE_OUTAGE_SECONDS.inc(delay)
            reason = "full" if isinstance(err, StoreFull) else "unreachable"
            log.warning("the job store is %s to %s; trying again in %g s", reason, what, delay)
            await asyncio.sleep(delay)


def is_postgres_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class _Listeners:
    """Callbacks told (with a short payload) that jobs changed; errors in one never reach the others."""

    def __init__(self) -> None:
        self._callbacks: list[Listener] = []

    def add(self, callback: Listener) -> None:
        self._callbacks.append(callback)

    def remove(self, callback: Listener) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def tell(self, payload: str) -> None:
        for callback in list(self._callbacks):
            try:
                callback(payload)
            except Exception:
                log.exception("a job store listener failed")


class SqliteDatabase:
    dialect = "sqlite"
    # Never evaluated in practice (the store passes its own clock on SQLite: one host, one clock),
    # but valid SQL, so the statements read the same on both backends.
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, conn: aiosqlite.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self.listeners = _Listeners()

    @classmethod
    async def connect(cls, path: str | os.PathLike) -> SqliteDatabase:
        """The file at ``path`` (made with its folder if missing); what keeps it from opening is a
        :class:`StoreFault`."""
        local = str(path) != ":memory:"
        if local:
            writable_folder(Path(path).parent)
            # First with plain sqlite3: a file aiosqlite fails to open leaves its thread answering
            # after the event loop may have closed (a traceback on stderr at exit).
            await asyncio.to_thread(_check_file, Path(path))
        conn = await aiosqlite.connect(path, isolation_level=None)  # autocommit: we write BEGIN/COMMIT
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException as err:
            await conn.close()
            if local and isinstance(err, sqlite3.Error):
                raise sqlite_fault(Path(path), err) from err
            raise
        return cls(conn, Path(path) if local else None)

    async def execute_fetchall(self, sql: str, args: Iterable = ()) -> list:
        """A read outside any transaction (WAL lets it run beside writers)."""
        with metrics.QUERY_SECONDS.labels("read").time():
            return list(await self._conn.execute_fetchall(sql, tuple(args)))

    @asynccontextmanager
    async def transaction(self):
        """A write transaction of several calls (``run`` writes one call); one at a time in this process,
        other processes wait on the file lock."""
        notes: list[str] = []
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield _SqliteTx(self._conn, notes)
                await self._conn.execute("COMMIT")  # a full disk can refuse the commit too
            except BaseException as err:
                await self._rollback()
                if isinstance(err, sqlite3.OperationalError) and err.sqlite_errorname == "SQLITE_FULL":
                    raise StoreFull() from err
                raise
        for payload in dict.fromkeys(notes):  # in-process listeners (the bot and runtime of one process)
            self.listeners.tell(payload)

    async def run(self, body, *, retry: bool = True):
        """``await body(tx)`` in a write transaction (SQLite waits on the file lock instead of retrying).

        The whole transaction (BEGIN IMMEDIATE, the body's statements, COMMIT) is one call on the
        connection's thread (:func:`_in_one_call`), which runs its calls one after another: nothing
        can come between the statements of one transaction, so no lock is held across an await. A
        burst of writes (50 members' requests, their reply handles, their progress posts) is queued
        on that thread at once and written back to back, rather than one per turn of a busy event
        loop behind a lock. A ``body`` awaits only its ``tx``, whose calls complete at once there.
        A cancelled caller's write is done whole or not at all.
        """
        notes: list[str] = []
        with metrics.QUERY_SECONDS.labels(metrics.operation_of(body)).time():
            result = await self._written(body, notes, retry=retry)
        for payload in dict.fromkeys(notes):  # in-process listeners (the bot and runtime of one process)
            self.listeners.tell(payload)
        return result

    async def _written(self, body, notes: list[str], *, retry: bool):
        """One call of ``body``'s transaction; a full disk is :class:`StoreFull`. Another process's
        burst can hold the file lock past the busy timeout (its writes run back to back on its
        thread, and SQLite's busy wait is not fair): with ``retry`` the rolled-back transaction is
        tried again after a short random wait, for up to :data:`BUSY_RETRY_SECONDS`."""
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        while True:
            try:
                if self._write_lock.locked():  # a transaction() of several calls is open: after it
                    async with self._write_lock:
                        return await self._in_one_call(body, notes)
                return await self._in_one_call(body, notes)
            except sqlite3.OperationalError as err:
                if err.sqlite_errorname == "SQLITE_FULL":
                    raise StoreFull() from err
                if not (retry and err.sqlite_errorname == "SQLITE_BUSY" and time.monotonic() < deadline):
                    raise
                notes.clear()
            await asyncio.sleep(random.uniform(0.01, 0.1))

    def _in_one_call(self, body, notes: list[str]):
        # aiosqlite runs every call through Connection._execute on its one thread; it has no public way
        # to run several statements as one call. Calling it queues the call before it first awaits.
        return self._conn._execute(_in_one_call, self._conn._conn, body, notes)

    async def copy_to(self, target: Path) -> int:
        """Write a consistent copy of the database (what the WAL holds included) to ``target``, a file
        that must not exist yet (``VACUUM INTO``: other connections go on meanwhile); the copy's
        ``user_version``."""
        await self._conn.execute("VACUUM INTO ?", (str(target),))
        return await asyncio.to_thread(_user_version, target)

    async def _rollback(self) -> None:
        # Runs after whatever this connection still has queued, BEGIN included, so it also ends a
        # transaction whose BEGIN was awaited by a task cancelled before it ran.
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError:  # BEGIN itself failed (e.g. busy): nothing to roll back
            pass

    async def close(self) -> None:
        await self._conn.close()


def _in_one_call(conn: sqlite3.Connection, body, notes: list[str]):
    """Run ``body`` (a coroutine function taking a tx) to its end in a write transaction on ``conn``,
    on the connection's thread. Its awaits of the tx complete at once; anything else it awaits is a
    mistake, rolled back and raised."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        step = body(_ThreadTx(conn, notes))
        try:
            awaited = step.send(None)
        except StopIteration as done:
            result = done.value
        else:
            step.close()
            raise RuntimeError(f"a SQLite transaction's body awaited {awaited!r}; it may await only its tx")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class _ThreadTx:
    """The tx :func:`_in_one_call` hands a body: the same calls as :class:`_SqliteTx`, run at once on the
    connection's thread."""

    def __init__(self, conn: sqlite3.Connection, notes: list[str]) -> None:
        self._conn = conn
        self._notes = notes

    async def execute_fetchall(self, sql: str, args: Iterable = ()) -> list:
        return self._conn.execute(sql, tuple(args)).fetchall()

    async def execute(self, sql: str, args: Iterable = ()) -> None:
        self._conn.execute(sql, tuple(args))

    async def notify(self, payload: str) -> None:
        self._notes.append(payload)

    async def lock(self, key: int) -> None:
        """BEGIN IMMEDIATE already holds the one write lock."""


def _check_file(path: Path) -> None:
    """Open ``path`` (made if missing) and read its header: a damaged or foreign file, or one this
    user may not read and write, is a :class:`StoreFault`."""
    if path.is_file() and not os.access(path, os.R_OK | os.W_OK):
        raise sqlite_fault(path, PermissionError(f"no right to read and write {path}"))
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as err:
        raise sqlite_fault(path, err) from err


def _user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


class _SqliteTx:
    def __init__(self, conn: aiosqlite.Connection, notes: list[str]) -> None:
        self._conn = conn
        self._notes = notes

    async def execute_fetchall(self, sql: str, args: Iterable = ()) -> list:
        return list(await self._conn.execute_fetchall(sql, tuple(args)))

    async def execute(self, sql: str, args: Iterable = ()) -> None:
        await self._conn.execute(sql, tuple(args))

    async def notify(self, payload: str) -> None:
        self._notes.append(payload)

    async def lock(self, key: int) -> None:
        """BEGIN IMMEDIATE already holds the one write lock."""


def _pg_sql(sql: str) -> str:
    """The store's ``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase:
    dialect = "postgresql"
    now_sql = "extract(epoch from clock_timestamp())::float8"

    def __init__(self, url: str, pool) -> None:
        self.url = url
        self.path = None
        self._pool = pool
        self.listeners = _Listeners()
        self._listen_task: asyncio.Task | None = None

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 8, idle_in_transaction: float = 30.0) -> PostgresDatabase:
        """``idle_in_transaction`` (seconds): the server ends a session that waits this long inside a
        transaction (its process frozen: SIGSTOP, a paused VM), so its locks do not stall every host."""
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        async def configure(conn) -> None:
            await conn.execute(f"SET idle_in_transaction_session_timeout = {max(1, round(idle_in_transaction * 1000))}")

        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            configure=configure,
            check=AsyncConnectionPool.check_connection,
            timeout=RETRY_SECONDS,
            open=False,
            name="animabot-store",
        )
        try:
            await pool.open(wait=True, timeout=10)
        except Exception as err:
            await pool.close()
            raise UserError(f"Cannot reach the job store database ({err}); check [store] url.") from None
        return cls(url, pool)

    async def _retrying(self, work, retry: bool):
        """Run ``work(conn)``; on a lost connection try again with backoff for ``RETRY_SECONDS``."""
        import psycopg
        from psycopg_pool import PoolTimeout

        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                async with self._pool.connection() as conn:
                    return await work(conn)
            except (psycopg.OperationalError, PoolTimeout) as err:
                metrics.STORE_CONNECTION_ERRORS.inc()
                if not retry or time.monotonic() + delay > deadline:
                    log.warning("job store database unavailable: %s", err)
                    raise StoreUnavailable() from err
                log.info("job store connection lost (%s); retrying in %.2f s", err, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    async def execute_fetchall(self, sql: str, args: Iterable = ()) -> list:
        async def read(conn):
            cur = await conn.execute(_pg_sql(sql), tuple(args))
            return await cur.fetchall()

        with metrics.QUERY_SECONDS.labels("read").time():
            return await self._retrying(read, retry=True)

    @asynccontextmanager
    async def transaction(self):
        """A transaction on a healthy pooled connection; a connection lost meanwhile (or ended by the
        server: this process was frozen past ``idle_in_transaction``) is :class:`StoreUnavailable`."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            async with self._pool.connection(timeout=RETRY_SECONDS) as conn:
                async with conn.transaction():
                    yield _PgTx(conn)
        except psycopg.errors.DiskFull as err:
            log.warning("job store database is full: %s", err)
            raise StoreFull() from err
        except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout, PoolTimeout) as err:
            metrics.STORE_CONNECTION_ERRORS.inc()
            log.warning("job store transaction lost its connection: %s", err)
            raise StoreUnavailable() from err

    async def run(self, body, *, retry: bool = True):
        """``await body(tx)`` in a transaction, run again on a lost connection (``retry``) for ``RETRY_SECONDS``.

        Only an idempotent body may be retried: a commit whose answer was lost may have happened.
        """
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.05
        timer = metrics.QUERY_SECONDS.labels(metrics.operation_of(body))
        while True:
            try:
                with timer.time():
                    async with self.transaction() as tx:
                        return await body(tx)
            except StoreUnavailable:
                if not retry or time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    # -- LISTEN/NOTIFY ------------------------------------------------------------------------
    def start_listening(self) -> None:
        """Listen on :data:`CHANNEL` on a connection of its own (reconnecting with backoff)."""
        if self._listen_task is None:
            self._listen_task = asyncio.create_task(self._listen(), name="animabot-store-listen")

    async def _listen(self) -> None:
        import psycopg

        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.1
                    self.listeners.tell("reconnected")  # whatever was missed meanwhile: look again
                    async for note in conn.notifies():
                        self.listeners.tell(note.payload)
            except psycopg.OperationalError as err:
                log.info("job store LISTEN connection lost (%s); reconnecting in %.1f s", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            await asyncio.gather(self._listen_task, return_exceptions=True)
        await self._pool.close()


class _PgTx:
    def __init__(self, conn) -> None:
        self._conn = conn

    async def execute_fetchall(self, sql: str, args: Iterable = ()) -> list:
        cur = await self._conn.execute(_pg_sql(sql), tuple(args))
        return await cur.fetchall() if cur.description else []

    async def execute(self, sql: str, args: Iterable = ()) -> None:
        await self._conn.execute(_pg_sql(sql), tuple(args))

    async def notify(self, payload: str) -> None:
        """Delivered to every listener when (and only if) the transaction commits."""
        await self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def lock(self, key: int) -> None:
        """A transaction-scoped advisory lock: the claims of every host take turns on it."""
        await self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


async def connect(location: str | os.PathLike, *, lease_seconds: float = 30.0) -> SqliteDatabase | PostgresDatabase:
    """A PostgreSQL URL (a session idle in a transaction for ``lease_seconds`` is ended: its worker
    has lost its jobs by then anyway), or the path of a SQLite file."""
    if is_postgres_url(location):
        return await PostgresDatabase.connect(str(location), idle_in_transaction=lease_seconds)
    return await SqliteDatabase.connect(location)

"""Bytes by key: saved frames, the latest preview, result videos and the audio uploaded for mux jobs.

One small interface, two homes, so another (object storage) can replace them later:

* :class:`FileBlobs`: files under the data folder (the SQLite default: every process of the host
  shares that folder, so a blob *is* its file and nothing is copied). A key ``jobs/42/preview.jpg``
  is the file ``<data_dir>/jobs/42/preview.jpg``; a reference (what a job row keeps) is its path.
* :class:`DatabaseBlobs`: rows of the ``blobs`` table (``BYTEA`` on PostgreSQL), for hosts that
  share nothing but the database. Each host keeps a local copy under its own data folder as a
  cache; a reference is the key. Writes can join a store transaction, so a frame is saved exactly
  when the progress that counts it is (and both are refused together once a lease is lost).

Keys are relative POSIX paths; the job's own blobs live under ``jobs/<id>/`` (what retention removes).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path, PurePosixPath

from engine.errors import UserError
from engine.files import write_atomic

log = logging.getLogger(__name__)

MAX_BLOB_BYTES = 64 * 1024 * 1024  # a result video larger than this is refused (Discord takes at most 25-500 MB)


def job_prefix(job_id: int) -> str:
    return f"jobs/{job_id}/"


def check_key(key: str) -> str:
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"a blob key must be a relative path without '..', got {key!r}")
    return str(path)


class FileBlobs:
    """Blobs as files under ``root`` (this host's data folder)."""

    local = True  # writers already put the files where readers look: nothing to copy

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).absolute()  # a reference stays right whatever folder a process runs in

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def ref(self, key: str) -> str:
        """What a job row records for ``key``: the file's path."""
        return str(self.path(key))

    async def put(self, key: str, data: bytes, *, job_id: int | None = None, tx=None) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)

    async def save(self, key: str, source: Path, *, job_id: int | None = None, tx=None) -> None:
        """Make ``source`` the blob ``key`` (nothing to do when it already is that file)."""
        target = self.path(key)
        if Path(source).resolve() != target.resolve():
            await self.put(key, Path(source).read_bytes())

    async def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    async def fetch(self, ref: str | None) -> Path | None:
        """The local file of a reference (a path, or a key), or ``None`` when there is none.

        A relative path that is not a key is one recorded while the data folder was given relative to
        the working folder (``data/jobs/1/…``, before the root was made absolute): it is found there.
        """
        if not ref:
            return None
        if Path(ref).is_absolute():
            return Path(ref) if Path(ref).exists() else None
        for path in (self.path(ref), Path(ref)):
            if path.exists():
                return path
        return None

    async def exists(self, ref: str | None) -> bool:
        """Whether the blob a reference names is kept."""
        return await self.fetch(ref) is not None

    async def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        folder = base if prefix.endswith("/") else base.parent
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())

    async def delete(self, prefix: str) -> None:
        """Remove every blob whose key starts with ``prefix`` (a folder prefix ends with ``/``)."""
        target = self.root / prefix.rstrip("/")
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


class DatabaseBlobs:
    """Blobs in the store's ``blobs`` table, with a local cache under ``cache_root``."""

    local = False

    def __init__(self, db, cache_root: str | os.PathLike, *, max_bytes: int = MAX_BLOB_BYTES) -> None:
        self._db = db
        self.cache = FileBlobs(cache_root)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        """The local cache file of ``key`` (it may not be there yet: see :meth:`fetch`)."""
        return self.cache.path(key)

    def ref(self, key: str) -> str:
        return check_key(key)

    async def put(self, key: str, data: bytes, *, job_id: int | None = None, tx=None) -> None:
        if len(data) > self.max_bytes:
            raise UserError(
                f"The file is {len(data) / 1e6:.1f} MB, more than the job store keeps "
                f"({self.max_bytes / 1e6:.0f} MB); ask for fewer frames or a smaller size."
            )
        sql = """INSERT INTO blobs (key, job_id, size, data, created_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, size = excluded.size,
                                                 data = excluded.data, created_at = excluded.created_at"""
        args = (check_key(key), job_id, len(data), data, time.time())
        if tx is not None:
            await tx.execute(sql, args)
        else:
            await self._db.run(lambda t: t.execute(sql, args))

    async def save(self, key: str, source: Path, *, job_id: int | None = None, tx=None) -> None:
        """Upload ``source`` as ``key`` (and keep it as this host's cached copy)."""
        data = Path(source).read_bytes()
        await self.put(key, data, job_id=job_id, tx=tx)
        cached = self.cache.path(key)
        if Path(source).resolve() != cached.resolve():
            await self.cache.put(key, data)

    async def get(self, key: str) -> bytes | None:
        rows = await self._db.execute_fetchall("SELECT data FROM blobs WHERE key = ?", (check_key(key),))
        return bytes(rows[0]["data"]) if rows else None

    async def fetch(self, ref: str | None) -> Path | None:
        """A local file with the blob's bytes: the cached copy, else downloaded into the cache."""
        if not ref:
            return None
        if Path(ref).is_absolute():  # a path recorded before the store moved to the database
            return Path(ref) if Path(ref).exists() else None
        cached = self.cache.path(ref)
        if cached.exists():
            return cached
        data = await self.get(ref)
        if data is None:
            return None
        await self.cache.put(ref, data)
        return cached

    async def exists(self, ref: str | None) -> bool:
        """Whether the blob a reference names is kept, asked of the database (the bytes are not read, and
        a copy cached on this host does not count: other hosts read the database); a path recorded
        before the store moved to the database is that file."""
        if not ref:
            return False
        if Path(ref).is_absolute():
            return Path(ref).exists()
        return bool(await self._db.execute_fetchall("SELECT 1 FROM blobs WHERE key = ?", (check_key(ref),)))

    async def keys(self, prefix: str) -> list[str]:
        rows = await self._db.execute_fetchall(
            "SELECT key FROM blobs WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        )
        return [row["key"] for row in rows]

    async def delete(self, prefix: str) -> None:
        await self._db.run(
            lambda tx: tx.execute("DELETE FROM blobs WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        )
        await self.cache.delete(prefix)

    async def download(self, prefix: str) -> int:
        """Replace the cached files under ``prefix`` with the database's; how many there are."""
        await self.cache.delete(prefix)
        keys = await self.keys(prefix)
        for key in keys:
            await self.fetch(key)
        return len(keys)

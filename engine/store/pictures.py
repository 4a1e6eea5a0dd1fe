"""Members' start pictures: kept by key in the store's blobs, each belonging to the guilds that sent it.

A job carries only the picture's key (``RenderParams.image_key``, the sha256 of its PNG), never its
pixels; the PNG is the blob ``pictures/<key>.png`` (on one host the file ``data_dir/pictures/<key>.png``;
where hosts share nothing but the database, a row every host reads, and :func:`fetch_picture` brings
it to a worker's own data folder before its job renders). The same picture sent twice is one blob.

A picture belongs to the guilds that sent it: the ``pictures`` table (migration 6) has one row per
such guild, with when that guild last used it. A render is queued with a picture only in a guild
that owns it (:meth:`PictureRecords.keep_picture`), and only that guild's row is renewed, so a key
seen elsewhere (an older posted file carried it) neither fetches the picture nor keeps it longer.
:meth:`PictureRecords.remove_old_pictures` drops the rows no job used for ``retention_days``, and a
picture with no row left goes from the blobs, unless a queued or running job starts from it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.files import write_atomic
from engine.request.picture import decode_png, picture_key

log = logging.getLogger(__name__)

PREFIX = "pictures/"  # the blobs' keys of the pictures
_BLOB_KEY = re.compile(r"pictures/([0-9a-f]{64})\.png")  # a picture's blob (not a file being written)


def picture_blob_key(key: str) -> str:
    return f"{PREFIX}{key}.png"


def picture_path(data_dir: Path, key: str) -> Path:
    """Where a host's copy of the picture is (on one host the blob itself, else a cached copy)."""
    return Path(data_dir) / picture_blob_key(key)


class PictureRecords:
    """Mixed into :class:`engine.store.store.JobStore` (it needs ``_db``, ``blobs``, ``_t`` and ``_now_sql``)."""

    async def put_picture(self, png: bytes, guild_id: int, now: float | None = None) -> str:
        """Keep a fitted picture's PNG as ``guild_id``'s; returns its key (the same bytes, the same key)."""
        key = picture_key(png)
        await self._db.run(  # the owner first: cleaning up never finds the blob without it
            lambda tx: tx.execute(
                f"""INSERT INTO pictures (key, guild_id, used_at) VALUES (?, ?, COALESCE(?, {self._now_sql}))
                    ON CONFLICT (key, guild_id) DO UPDATE SET used_at = excluded.used_at""",
                (key, guild_id, self._t(now)),
            )
        )
        if not await self.blobs.exists(picture_blob_key(key)):
            await self.blobs.put(picture_blob_key(key), png)
            log.info("picture %s kept for guild %d (%d bytes)", key[:12], guild_id, len(png))
        return key

    async def keep_picture(self, key: str, guild_id: int | None, now: float | None = None) -> bool:
        """Whether ``guild_id`` may render from picture ``key``: it sent it and it is still kept. If
        so that guild's row is renewed (retention spares it); another guild's never is."""
        if guild_id is None:
            return False
        rows = await self._db.run(
            lambda tx: tx.execute_fetchall(
                f"""UPDATE pictures SET used_at = COALESCE(?, {self._now_sql})
                    WHERE key = ? AND guild_id = ? RETURNING key""",
                (self._t(now), key, guild_id),
            )
        )
        return bool(rows) and await self.blobs.exists(picture_blob_key(key))

    async def picture_used_at(self, key: str, guild_id: int) -> float | None:
        """When ``guild_id`` last sent or queued picture ``key``; ``None`` when it does not own it."""
        rows = await self._db.execute_fetchall(
            "SELECT used_at FROM pictures WHERE key = ? AND guild_id = ?", (key, guild_id)
        )
        return rows[0]["used_at"] if rows else None

    async def remove_old_pictures(self, older_than_seconds: float, now: float | None = None) -> int:
        """Forget the guilds that have not used a picture for ``older_than_seconds``, and delete the
        pictures no guild owns any more (this host's copies with them); returns how many went."""
        kept = await self.blobs.keys(PREFIX)  # listed before the owners are read: a new picture's row is older
        if not self.blobs.local:
            kept = sorted({*kept, *await self.blobs.cache.keys(PREFIX)})
        rows = await self._db.run(
            lambda tx: tx.execute_fetchall(
                f"""DELETE FROM pictures WHERE used_at < COALESCE(?, {self._now_sql}) - ? RETURNING key""",
                (self._t(now), older_than_seconds),
            )
        )
        owned = {row["key"] for row in await self._db.execute_fetchall("SELECT key FROM pictures")}
        owned |= await self._pictures_of_unfinished_jobs()
        gone = [blob for blob in kept if (match := _BLOB_KEY.fullmatch(blob)) and match[1] not in owned]
        for blob in gone:
            await self.blobs.delete(blob)
        if rows or gone:
            log.info("%d picture row(s) expired; %d picture(s) removed", len(rows), len(gone))
        return len(gone)

    async def _pictures_of_unfinished_jobs(self) -> set[str]:
        """The keys of the pictures queued and running jobs start from: kept whatever their rows say."""
        rows = await self._db.execute_fetchall("SELECT params FROM jobs WHERE status IN ('queued', 'running')")
        keys = set()
        for row in rows:
            try:
                params = json.loads(row["params"] or "null")
            except ValueError:
                continue
            if isinstance(params, dict) and isinstance(params.get("image_key"), str):
                keys.add(params["image_key"])
        return keys


def load_picture(data_dir: Path, key: str) -> np.ndarray:
    """The fitted picture (H×W×3 uint8) in this host's data folder; ``UserError`` when it is not there
    (after :func:`fetch_picture`: no longer kept)."""
    try:
        png = picture_path(data_dir, key).read_bytes()
    except FileNotFoundError:
        raise UserError(
            "The picture this render starts from is no longer kept; start again with a new picture."
        ) from None
    return decode_png(png)


async def fetch_picture(store, data_dir: Path, key: str) -> None:
    """Bring a picture kept by another host into this host's data folder (nothing to do when shared)."""
    path = picture_path(data_dir, key)
    if store.blobs.local or path.exists():
        return
    png = await store.blobs.get(picture_blob_key(key))
    if png is not None:  # missing: load_picture explains that it is no longer kept
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, png)

"""Where the fitted pictures of picture jobs are kept: the one place that stores and loads them.

A job carries only the picture's key (``RenderParams.image_key``, the sha256 of its PNG), never its
pixels; the PNG lives here as ``data_dir/pictures/<key>.png``, written atomically. The same picture
asked for twice (a re-roll, or two members with one meme) is one file. Where hosts share nothing
but the database, :func:`share_picture` also puts the PNG in the blob store and :func:`fetch_picture`
brings it to a worker's own data folder before its job renders.

Retention: saving or keeping a picture refreshes its file time, and ``remove_old_pictures`` drops the
ones no job has used for ``retention_days``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.files import write_atomic
from engine.request.picture import decode_png, picture_key

log = logging.getLogger(__name__)


def picture_path(data_dir: Path, key: str) -> Path:
    return Path(data_dir) / "pictures" / f"{key}.png"


def save_picture(data_dir: Path, png: bytes) -> str:
    """Keep a fitted picture's PNG; returns its key (the same bytes always give the same key)."""
    key = picture_key(png)
    path = picture_path(data_dir, key)
    if not keep_picture(data_dir, key):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, png)
        log.info("picture %s kept (%d bytes)", key[:12], len(png))
    return key


def keep_picture(data_dir: Path, key: str) -> bool:
    """Whether the picture is still kept; if so its time is refreshed, so retention spares it."""
    path = picture_path(data_dir, key)
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def load_picture(data_dir: Path, key: str) -> np.ndarray:
    """The fitted picture (H×W×3 uint8) kept under ``key``; ``UserError`` when it is no longer kept."""
    try:
        png = picture_path(data_dir, key).read_bytes()
    except FileNotFoundError:
        raise UserError(
            "The picture this render starts from is no longer kept; start again with a new picture."
        ) from None
    return decode_png(png)


def remove_old_pictures(data_dir: Path, older_than_seconds: float, now: float | None = None) -> int:
    """Delete pictures not saved or kept for ``older_than_seconds``; returns how many went."""
    folder = Path(data_dir) / "pictures"
    cutoff = (time.time() if now is None else now) - older_than_seconds
    removed = 0
    for path in folder.glob("*.png") if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("%d picture(s) removed after %g days unused", removed, older_than_seconds / 86400)
    return removed


def picture_blob_key(key: str) -> str:
    return f"pictures/{key}.png"


async def share_picture(store, data_dir: Path, key: str) -> None:
    """Put a kept picture in the database too, when the blob store is not this host's data folder."""
    if not store.blobs.local:
        await store.blobs.put(picture_blob_key(key), picture_path(data_dir, key).read_bytes())


async def fetch_picture(store, data_dir: Path, key: str) -> None:
    """Bring a picture kept by another host into this host's data folder (nothing to do when shared)."""
    if store.blobs.local or picture_path(data_dir, key).exists():
        return
    png = await store.blobs.get(picture_blob_key(key))
    if png is not None:  # missing: load_picture explains that it is no longer kept
        save_picture(data_dir, png)

"""A member's picture for ``/animate image:`` and the Animate context menu: found, downloaded, fitted, kept.

Nothing is queued until the picture passed every check of ``engine.request.picture``: what the
attachment declares (size, type) is checked before downloading, the download streams and stops at
``MAX_PICTURE_BYTES`` whatever was declared, and the bytes must decode as a picture of at most
``MAX_PICTURE_PIXELS``. The fitted picture is kept in the store as the guild's
(``engine.store.pictures``) and the render parameters carry only its key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord

from bot.actions import check_limits
from bot.download import download_capped
from engine.config import Config
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.request.picture import (
    MAX_PICTURE_BYTES,
    FittedPicture,
    check_picture_size,
    encode_png,
    prepare_picture,
)
from engine.store.store import JobStore

log = logging.getLogger(__name__)

DOWNLOAD_SECONDS = 60.0  # the whole download, however slow the CDN
NOT_A_PICTURE = "That file is not a picture; attach a PNG, JPEG, WebP or GIF image."
MAX_VIDEO_BYTES = 25 * 1024 * 1024  # the largest video Remix downloads (for its recipe, or its frame 0)
NO_PICTURE_IN_MESSAGE = "That message has no picture to animate; use Animate on a message with an image attached."


@dataclass(frozen=True)
class PictureSource:
    """Where a picture is: a URL, with the size and type Discord declared (None: not declared)."""

    url: str
    size: int | None = None
    content_type: str | None = None


def from_attachment(attachment: discord.Attachment) -> PictureSource:
    return PictureSource(attachment.url, attachment.size, attachment.content_type)


def in_message(message: discord.Message) -> PictureSource:
    """The first picture of a message: an image attachment, else an embed's image or thumbnail."""
    for attachment in message.attachments:
        if (attachment.content_type or "").startswith("image/"):
            return from_attachment(attachment)
    for embed in message.embeds:
        for media in (embed.image, embed.thumbnail):
            if media.url:
                return PictureSource(media.proxy_url or media.url)
    raise UserError(NO_PICTURE_IN_MESSAGE)


def check_source(source: PictureSource) -> None:
    """Refuse what the declared size and type already show, before downloading anything."""
    if source.size is not None:
        check_picture_size(source.size)
    kind = (source.content_type or "").split(";")[0].strip().lower()
    if kind and kind != "application/octet-stream" and not kind.startswith("image/"):
        raise UserError(NOT_A_PICTURE)


async def picture_params(
    store: JobStore, config: Config, session: aiohttp.ClientSession, params: RenderParams, source: PictureSource, *,
    size_given: bool, user_id: int, guild_id: int | None, channel_id: int | None,
) -> tuple[RenderParams, FittedPicture]:  # fmt: skip
    """``params`` starting from the picture at ``source``: checked, downloaded (with ``session``),
    fitted and kept in ``store`` as ``guild_id``'s.

    Without ``size_given`` the size follows the picture's aspect. The guild's limits are checked
    before the download (a server that forbids pictures never fetches one).
    """
    # 1. what we can refuse before downloading: the settings, the guild's limits, the declared file
    placeholder = dataclasses.replace(params, image_key="0" * 64).validate()
    await check_limits(store, config.limits, placeholder, user_id=user_id, guild_id=guild_id, channel_id=channel_id)
    check_source(source)
    # 2. download (capped), decode and fit, off the event loop
    too_big = f"That picture is larger than {MAX_PICTURE_BYTES // 2**20} MiB; send a smaller one."
    data = await download_capped(session, source.url, cap=MAX_PICTURE_BYTES, seconds=DOWNLOAD_SECONDS,
                                 what="picture", too_big=too_big, again="attach it again")  # fmt: skip
    size = (params.width, params.height) if size_given else None
    picture = await asyncio.to_thread(prepare_picture, data, size)
    # 3. keep it as this guild's; the job carries its key
    key = await store.put_picture(picture.png, guild_id)
    height, width = picture.pixels.shape[:2]
    log.info("picture %s (%dx%d from %dx%d) for user %d", key[:12], width, height, *picture.source_size, user_id)
    return dataclasses.replace(params, image_key=key, width=width, height=height), picture


async def video_frame_params(
    store: JobStore, config: Config, session: aiohttp.ClientSession, params: RenderParams, source: PictureSource, *,
    suffix: str, user_id: int, guild_id: int | None, channel_id: int | None,
) -> RenderParams:  # fmt: skip
    """``params`` starting from frame 0 of the video at ``source`` (a file whose recipe began from a
    picture): downloaded (capped), decoded, fitted to the size ``params`` render and kept as
    ``guild_id``'s new picture. The picture the file was first made from is never looked up: the
    file carries no key to it, and the pixels in the file are what the member who sent it has."""
    # 1. what we can refuse before downloading: the settings and the guild's limits
    placeholder = dataclasses.replace(params, image_key="0" * 64).validate()
    await check_limits(store, config.limits, placeholder, user_id=user_id, guild_id=guild_id, channel_id=channel_id)
    too_big = f"That video is larger than {MAX_VIDEO_BYTES // 2**20} MiB; Remix works on animabot's own uploads."
    if source.size is not None and source.size > MAX_VIDEO_BYTES:
        raise UserError(too_big)
    # 2. download (capped), decode frame 0 and fit it, off the event loop
    data = await download_capped(session, source.url, cap=MAX_VIDEO_BYTES, seconds=DOWNLOAD_SECONDS,
                                 what="video", too_big=too_big, again="try Remix again")  # fmt: skip
    png = await asyncio.to_thread(_first_frame_png, data, suffix, config.data_dir / "uploads")
    picture = await asyncio.to_thread(prepare_picture, png, (params.width, params.height))
    # 3. keep it as this guild's; the job carries its key
    key = await store.put_picture(picture.png, guild_id)
    log.info("picture %s from frame 0 of a video for user %d", key[:12], user_id)
    return dataclasses.replace(params, image_key=key)


def _first_frame_png(data: bytes, suffix: str, folder: Path) -> bytes:
    """Frame 0 of the video ``data`` (a file ending in ``suffix``), as a PNG."""
    from engine.video.read import first_frame  # ffmpeg side; imported only when needed

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / f"video{suffix}"
        path.write_bytes(data)
        return encode_png(first_frame(path))

"""A member's picture for ``/animate image:`` and the Animate context menu: found, downloaded, fitted, kept.

Nothing is queued until the picture passed every check of ``engine.request.picture``: what the
attachment declares (size, type) is checked before downloading, the download streams and stops at
``MAX_PICTURE_BYTES`` whatever was declared, and the bytes must decode as a picture of at most
``MAX_PICTURE_PIXELS``. The fitted picture is kept with ``engine.store.pictures`` and the render
parameters carry only its key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

import aiohttp
import discord

from bot.actions import check_limits
from bot.download import download_capped
from engine.config import Config
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.request.picture import MAX_PICTURE_BYTES, FittedPicture, check_picture_size, prepare_picture
from engine.store.pictures import save_picture, share_picture
from engine.store.store import JobStore

log = logging.getLogger(__name__)

DOWNLOAD_SECONDS = 60.0  # the whole download, however slow the CDN
NOT_A_PICTURE = "That file is not a picture; attach a PNG, JPEG, WebP or GIF image."
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
    fitted and kept (in ``config.data_dir``, shared through ``store``).

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
    # 3. keep it; the job carries its key
    key = await asyncio.to_thread(save_picture, config.data_dir, picture.png)
    await share_picture(store, config.data_dir, key)
    height, width = picture.pixels.shape[:2]
    log.info("picture %s (%dx%d from %dx%d) for user %d", key[:12], width, height, *picture.source_size, user_id)
    return dataclasses.replace(params, image_key=key, width=width, height=height), picture

"""Delivering a finished job: the MP4 fitted to the upload limit, or a readable outcome instead.

The progress tracker (``bot.progress``) decides *when* a job is delivered; this module posts *what*
it ends with:

1. a finished video is posted with its result text, a Re-roll button and 🔄/❌ reactions, after
   re-encoding it to fit the upload limit (the guild's, capped by what Discord allows there);
2. when Discord refuses the upload anyway (HTTP 413), it is re-encoded to half that size and tried
   once more; a second refusal, or a limit nothing fits under, is explained in the channel;
3. a failed or cancelled job gets its final progress text posted only when there is no progress
   message to show it on;
4. the result message is recorded in the store (that marks the job delivered) even if the bot
   stops meanwhile, and a ``/mux`` upload is removed once its job has ended.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.messages import (
    CANCEL_EMOJI,
    REROLL_EMOJI,
    apology,
    format_bytes,
    progress_text,
    result_filename,
    result_text,
    upload_failed_text,
    user_ref,
)
from bot.replies import NO_MENTIONS
from bot.settings import get_limits
from bot.views import result_view
from engine.errors import UserError
from engine.queue.jobs import Job, JobKind, JobStatus

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)


def upload_too_large(err: discord.HTTPException) -> bool:
    """Discord refuses an oversize upload with HTTP 413 or JSON error code 40005."""
    return err.status == 413 or err.code == 40005


async def fit(source: Path, limit: int) -> tuple[Path, str]:
    """``source`` if it is within ``limit`` bytes, else a re-encoded copy that is (or ``UserError``)."""
    size = source.stat().st_size
    if size <= limit:
        return source, ""
    from engine.video.edit import fit_to_size  # ffmpeg side; imported only when needed

    out = source.with_name(f"{source.stem}-fit{limit}{source.suffix}")  # a GIF or WebP stays one
    await asyncio.to_thread(fit_to_size, source, out, limit)
    note = f"re-encoded from {format_bytes(size)} to {format_bytes(out.stat().st_size)} to fit the upload limit"
    return out, note


def job_channel(bot: AnimaBot, job: Job) -> discord.PartialMessageable:
    """Where the job's messages go: the channel its command was used in."""
    return bot.get_partial_messageable(job.origin_id, guild_id=job.guild_id)


async def upload_limit(bot: AnimaBot, job: Job) -> int:
    """The smaller of the guild's configured limit and what Discord allows in that guild."""
    limit = math.inf
    if job.guild_id is not None:
        limit = (await get_limits(bot.store, job.guild_id, defaults=bot.config.limits)).upload_limit_bytes
    guild = bot.get_guild(job.guild_id) if job.guild_id else None
    if guild is not None:
        limit = min(limit, guild.filesize_limit)
    return int(limit) if limit != math.inf else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


async def post_outcome(bot: AnimaBot, job: Job, *, progress_shown: bool) -> discord.Message | None:
    """Post how a finished job ended; ``None`` when its progress message (``progress_shown``) says it."""
    if job.status is JobStatus.DONE:
        return await post_result(bot, job)
    if not progress_shown:  # failed or cancelled, and no progress message to show it on
        return await job_channel(bot, job).send(progress_text(job), allowed_mentions=NO_MENTIONS)
    return None


async def post_result(bot: AnimaBot, job: Job) -> discord.Message:
    """The video with its text, button and reactions; or why it could not be posted."""
    parent = await bot.store.get(job.parent_id) if job.kind is JobKind.MUX and job.parent_id else None
    channel = job_channel(bot, job)
    source = Path(job.result_path) if job.result_path else None
    if source is None or not source.exists():
        log.error("job %d is done but its video %s is missing", job.id, job.result_path)
        return await channel.send(
            upload_failed_text(job, "the video file is missing on the host."), allowed_mentions=NO_MENTIONS
        )
    limit = await upload_limit(bot, job)
    try:
        upload, note = await fit(source, limit)
        for last_try in (False, True):
            try:
                message = await send_video(channel, job, parent, upload, note)
                break
            except discord.HTTPException as err:
                if not upload_too_large(err):
                    raise
                size = upload.stat().st_size
                if last_try:  # a second refusal is final: say so rather than retry from full size
                    raise UserError(
                        f"Discord refused it even at {format_bytes(size)}; ask for fewer frames or a smaller size."
                    ) from None
                # Discord's real limit is lower than we knew: re-encode to half and try once more.
                log.info("job %d: upload of %d bytes refused (%s); re-encoding to %d", job.id, size,
                         err.status, size // 2)  # fmt: skip
                upload, note = await fit(source, size // 2)
    except UserError as err:
        log.info("job %d: video not posted: %s", job.id, err)
        return await channel.send(upload_failed_text(job, str(err)), allowed_mentions=NO_MENTIONS)
    for emoji in (REROLL_EMOJI, CANCEL_EMOJI) if job.kind is not JobKind.MUX else (CANCEL_EMOJI,):
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException:
            log.warning("job %d: could not add %s to result message %d", job.id, emoji, message.id)
    return message


async def send_video(
    channel: discord.PartialMessageable, job: Job, parent: Job | None, path: Path, note: str
) -> discord.Message:
    view = result_view(job.id) if job.kind is not JobKind.MUX else discord.utils.MISSING
    return await channel.send(
        result_text(job, parent, note),
        file=discord.File(path, filename=result_filename(job, parent)),
        view=view,
        allowed_mentions=NO_MENTIONS,
    )


async def record_result(bot: AnimaBot, job_id: int, message_id: int) -> None:
    """Store the result message even if the bot stops now: unrecorded, it would be posted again."""
    write = asyncio.ensure_future(bot.store.set_posts(job_id, result_post_id=message_id))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        await write
        raise


def remove_upload(bot: AnimaBot, path: str) -> None:
    """Delete a /mux upload once its job has ended (only files in the uploads folder)."""
    uploads = (bot.config.data_dir / "uploads").resolve()
    target = Path(path).resolve()
    if target.is_relative_to(uploads):
        target.unlink(missing_ok=True)


async def post_apology(bot: AnimaBot, job: Job) -> None:
    """Tell the channel, with the job id the host can find in the log (best effort)."""
    try:
        await job_channel(bot, job).send(f"{user_ref(job.user_id)} {apology(job.id)}", allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("job %d: could not post the apology either", job.id)

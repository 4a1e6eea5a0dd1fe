"""Delivering a finished job: the MP4 fitted to the upload limit, or a readable outcome instead.

The progress tracker (``bot.delivery.progress``) decides *when* a job is delivered; this module's
:class:`ResultPoster` posts *what* it ends with:

1. a finished video is posted with its result text, its Re-roll, Info and Remix buttons and 🔄/❌ reactions, after
   re-encoding it to fit the upload limit (the guild's, capped by what Discord allows there);
2. when Discord refuses the upload anyway (HTTP 413), it is re-encoded to half that size and tried
   once more; a second refusal, or a limit nothing fits under, is explained in the channel;
3. a failed or cancelled job gets its final progress text posted only when there is no progress
   message to show it on;
4. the result message is recorded in the store (that marks the job delivered) before anything
   else is done with it, even if the bot stops meanwhile; every outcome post carries the job's
   nonce (``enforce_nonce``), so a post made just before a crash, and not recorded, is answered
   by Discord with that same message when the restarted bot posts again, not made twice;
5. a refusal that retrying cannot fix (:func:`is_permanent`: missing permissions or access, the
   channel gone) holds the result back in the store and tells the member (``bot.delivery.notify``): the
   video is kept, and ``/deliver`` posts it once that is fixed;
6. a ``/mux`` upload is removed once its job has ended.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import discord

from bot import ops
from bot.checks import missing_for_posting
from bot.delivery import notify
from bot.guild_limits import get_limits
from bot.job_buttons import result_view
from bot.replies import NO_MENTIONS
from bot.text.messages import (
    CANCEL_EMOJI,
    REROLL_EMOJI,
    SPOILER_NOTE,
    apology,
    format_bytes,
    is_spoiler,
    not_posted_reason,
    not_posted_text,
    progress_text,
    result_filename,
    result_text,
    upload_failed_text,
    user_ref,
)
from engine.config import Config
from engine.errors import UserError
from engine.store.jobs import Job, JobKind, JobStatus
from engine.store.store import JobStore

log = logging.getLogger(__name__)

# Refusals that retrying does not fix: Missing Permissions, Missing Access, Unknown Channel, Unknown Message.
PERMANENT_CODES = frozenset({50013, 50001, 10003, 10008})


def is_permanent(err: BaseException) -> bool:
    """A Discord refusal to give up on at once (403/404); 429 and 5xx are retried, by discord.py and us."""
    return isinstance(err, discord.HTTPException) and (err.status in (403, 404) or err.code in PERMANENT_CODES)


def nonce(job: Job) -> str:
    """The job's outcome post's nonce (Discord keeps up to 25 characters)."""
    return f"animabot-job-{job.id}"


def upload_too_large(err: discord.HTTPException) -> bool:
    """Discord refuses an oversize upload with HTTP 413 or JSON error code 40005."""
    return err.status == 413 or err.code == 40005


async def result_file(store: JobStore, job: Job) -> Path | None:
    """The job's video as a file on this host, through the store's blobs (from the database to this
    host's cache when hosts share only that), or ``None`` when it is no longer kept. Every read of a
    result goes through here: ``result_path`` is a reference, not a path on this host."""
    return await store.blobs.fetch(job.result_path)


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


async def decorate(job: Job, message: discord.Message) -> None:
    """🔄 and ❌ on a posted video (❌ only on a mux result); best effort."""
    if job.status is not JobStatus.DONE or not message.attachments:
        return
    for emoji in (REROLL_EMOJI, CANCEL_EMOJI) if job.kind is not JobKind.MUX else (CANCEL_EMOJI,):
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException:
            log.warning("job %d: could not add %s to result message %d", job.id, emoji, message.id)


async def send_video(
    channel: discord.abc.Messageable, job: Job, parent: Job | None, path: Path, note: str, once: str
) -> discord.Message:
    view = result_view(job.id) if job.kind is not JobKind.MUX else discord.utils.MISSING
    if is_spoiler(job):
        note = f"{note}; {SPOILER_NOTE}" if note else SPOILER_NOTE
    message = await channel.send(
        result_text(job, parent, note),
        file=discord.File(path, filename=result_filename(job, parent)),
        view=view,
        allowed_mentions=NO_MENTIONS,
        nonce=once,
    )
    ops.upload_posted(path.stat().st_size)
    return message


class ResultPoster:
    """Posts a finished job's outcome with ``client``, reading and recording it in ``store``; ``config``
    gives the limits (the upload limit), the retention days (what a member is told) and the data folder."""

    def __init__(self, client: discord.Client, store: JobStore, config: Config) -> None:
        self.client = client
        self.store = store
        self.config = config

    def channel(self, job: Job) -> discord.PartialMessageable:
        """Where the job's messages go: the channel its command was used in."""
        return self.client.get_partial_messageable(job.origin_id, guild_id=job.guild_id)

    async def upload_limit(self, job: Job) -> int:
        """The smaller of the guild's configured limit and what Discord allows in that guild."""
        limit = math.inf
        if job.guild_id is not None:
            limit = (await get_limits(self.store, job.guild_id, defaults=self.config.limits)).upload_limit_bytes
        guild = self.client.get_guild(job.guild_id) if job.guild_id else None
        if guild is not None:
            limit = min(limit, guild.filesize_limit)
        return int(limit) if limit != math.inf else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    async def post_outcome(self, job: Job, *, progress_shown: bool) -> discord.Message | None:
        """Post how a finished job ended; ``None`` when its progress message (``progress_shown``) says it."""
        if job.status is JobStatus.DONE:
            return await self.post_result(job)
        if not progress_shown:  # failed or cancelled, and no progress message to show it on
            return await self.channel(job).send(progress_text(job), allowed_mentions=NO_MENTIONS, nonce=nonce(job))
        return None

    async def post_result(
        self, job: Job, channel: discord.abc.Messageable | None = None, *, once: str | None = None
    ) -> discord.Message:
        """The video with its text and buttons (in ``channel``, else the job's); or why it could not be posted.

        ``once`` is the post's nonce (the job's own by default): Discord answers a repeat with the
        message made the first time. The reactions come after the post is recorded: :func:`decorate`.
        """
        parent = await self.store.get(job.parent_id) if job.kind is JobKind.MUX and job.parent_id else None
        channel = channel or self.channel(job)
        once = once or nonce(job)
        source = await result_file(self.store, job)
        if source is None:
            log.error("job %d is done but its video %s is missing", job.id, job.result_path)
            return await channel.send(
                upload_failed_text(job, "the video file is missing on the host."),
                allowed_mentions=NO_MENTIONS,
                nonce=once,
            )
        limit = await self.upload_limit(job)
        try:
            upload, note = await fit(source, limit)
            for last_try in (False, True):
                try:
                    message = await send_video(channel, job, parent, upload, note, once)
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
            return await channel.send(upload_failed_text(job, str(err)), allowed_mentions=NO_MENTIONS, nonce=once)
        return message

    def missing_in(self, channel_id: int | None, guild_id: int | None) -> list[str]:
        """What the bot lacks to post videos in the channel, as far as its cache knows (``[]``: unknown)."""
        guild = self.client.get_guild(guild_id) if guild_id else None
        channel = guild.get_channel_or_thread(channel_id) if guild and channel_id else None
        if channel is None or guild.me is None:
            return []
        return missing_for_posting(channel.permissions_for(guild.me), in_thread=isinstance(channel, discord.Thread))

    async def hold_and_tell(self, job: Job, err: discord.HTTPException) -> str | None:
        """Discord refused the outcome for good: hold it back in the store and tell the member why and what next.

        Returns where the member was told (``bot.delivery.notify.tell``).
        """
        reason = not_posted_reason(err.code, job.origin_id, self.missing_in(job.origin_id, job.guild_id))
        await self.store.hold(job.id, reason)
        text = not_posted_text(job, reason, self.config.engine.retention_days)
        told = await notify.tell(self.client, self.store, job, text)
        log.warning("job %d: Discord refused its post for good (%s %s); held, member told by %s",
                    job.id, err.status, err.code, told)  # fmt: skip
        return told

    async def record_result(self, job_id: int, message_id: int) -> None:
        """Store the result message even if the bot stops now: unrecorded, it would be posted again."""
        write = asyncio.ensure_future(self.store.set_posts(job_id, result_post_id=message_id))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await write
            raise

    def remove_upload(self, path: str) -> None:
        """Delete a /mux upload once its job has ended (only files in the uploads folder; in the
        database too when the store keeps blobs there, where ``path`` is the key)."""
        data_dir = self.config.data_dir
        if not Path(path).is_absolute() and path.startswith("uploads/") and not self.store.blobs.local:
            task = asyncio.ensure_future(self.store.blobs.delete(path))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # best effort: retention removes it anyway
            path = str(data_dir / path)
        uploads = (data_dir / "uploads").resolve()
        target = Path(path).resolve()
        if target.is_relative_to(uploads):
            target.unlink(missing_ok=True)

    async def post_apology(self, job: Job) -> None:
        """Tell the channel, with the job id the host can find in the log (best effort)."""
        try:
            await self.channel(job).send(f"{user_ref(job.user_id)} {apology(job.id)}", allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.warning("job %d: could not post the apology either", job.id)

"""``/mux audio:<file> [job]``: put the user's soundtrack on one of their finished videos.

Nothing is downloaded before the attachment's declared size and type pass; the download itself
is capped too, and the saved file must decode as audio of a sane length before a job is queued.
The content policy is the one of the channel where ``/mux`` is used (``bot.safety.mux_safety``):
a video made in an age-restricted channel is checked again when it is muxed in an ordinary one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.actions import check_limits, job_on_server
from bot.answers import answer_queued
from bot.download import download_capped
from bot.safety import mux_safety
from bot.text.messages import format_bytes, format_duration
from engine.errors import UserError
from engine.store.jobs import Job, JobKind, JobStatus

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

MAX_AUDIO_BYTES = 25 * 1024 * 1024
MAX_AUDIO_SECONDS = 600.0
DOWNLOAD_SECONDS = 120.0  # the whole download, however slow the CDN
UNSPECIFIC_TYPES = ("", "application/octet-stream", "video/mp4", "video/webm", "video/ogg")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".mp4", ".webm")
# Uploaded audio is checked here, two files at a time: however many members send at once, the checks
# queue behind each other and never fill the default executor that every other command's work uses.
AUDIO_CHECKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="audio-check")


def check_attachment(filename: str, content_type: str | None, size: int) -> str:
    """The extension to save the upload under; ``UserError`` before anything is downloaded."""
    if size > MAX_AUDIO_BYTES:
        raise UserError(
            f"That file is {format_bytes(size)}; audio for /mux can be at most {format_bytes(MAX_AUDIO_BYTES)}."
        )
    extension = Path(filename).suffix.lower()
    kind = (content_type or "").split(";")[0].strip().lower()
    # An .m4a may come as video/mp4, or a file with no type at all: then the extension decides.
    if not (kind.startswith("audio/") or (kind in UNSPECIFIC_TYPES and extension in AUDIO_EXTENSIONS)):
        shown = kind or extension or "unknown type"
        raise UserError(f"That file ({shown}) is not audio; attach an MP3, WAV, OGG, FLAC or M4A file.")
    return extension if extension in AUDIO_EXTENSIONS else ".audio"


def upload_path(uploads: Path, interaction_id: int, extension: str) -> Path:
    """Where an upload is saved: named by the interaction id, never by the user's file name."""
    if not re.fullmatch(r"\.[a-z0-9]{1,8}", extension):
        extension = ".audio"
    return uploads / f"{interaction_id}{extension}"


def upload_key(path: Path) -> str:
    """The blob key of a saved upload."""
    return f"uploads/{path.name}"


class Mux(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="mux", description="Put your own soundtrack on one of your videos.")
    @app_commands.guild_only()
    @checks.bot_may_post()
    @app_commands.describe(
        audio="An audio file (MP3, WAV, OGG, FLAC or M4A; at most 25 MiB and 10 minutes)",
        job="The job whose video gets the audio (your latest finished video when left out)",
    )
    async def mux(
        self, interaction: discord.Interaction, audio: discord.Attachment, job: app_commands.Range[int, 1] | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        # 1. check what we can before downloading anything (the checks above ran first)
        extension = check_attachment(audio.filename, audio.content_type, audio.size)
        target = await self._target(interaction, job)  # one of the member's own videos (any, for moderators)
        user_id, guild_id, channel_id = interaction.user.id, interaction.guild_id, interaction.channel_id
        await check_limits(
            self.bot.store, self.bot.config.limits, None, user_id=user_id, guild_id=guild_id, channel_id=channel_id
        )
        safety = await mux_safety(self.bot, self.bot.store, self.bot.config, target, user_id=user_id,
                                  guild_id=guild_id, channel_id=channel_id)  # fmt: skip
        # 2. download (capped) and check that it is audio of a sane length
        path = upload_path(self.bot.config.data_dir / "uploads", interaction.id, extension)
        await self._download(audio, path)
        audio_ref = None
        try:
            from engine.video.read import check_audio  # ffmpeg side; imported only when needed

            loop = asyncio.get_running_loop()
            seconds = await loop.run_in_executor(AUDIO_CHECKS, check_audio, path, MAX_AUDIO_SECONDS)
            if seconds > MAX_AUDIO_SECONDS:
                raise UserError(
                    f"That audio is {format_duration(seconds)} long; /mux takes at most "
                    f"{format_duration(MAX_AUDIO_SECONDS)} (only the video's length is used anyway)."
                )
            # 3. queue the mux job (until it is queued, nothing else would ever remove the file);
            # the limits are checked again on the usage the insert's own transaction reads
            audio_ref = await self._keep(path)
            mux_job = await self.bot.actions.queue_mux(
                target, audio_ref, user_id=user_id, guild_id=guild_id, channel_id=channel_id, safety=safety
            )
        except BaseException as err:
            path.unlink(missing_ok=True)
            if audio_ref is not None and isinstance(err, Exception):  # refused: the database's copy goes too
                await self.bot.store.blobs.delete(upload_key(path))
            raise
        log.info("job %d: %.1f s of audio from user %d for job %d", mux_job.id, seconds, user_id, target.id)
        await answer_queued(interaction, self.bot.store, mux_job)

    async def _target(self, interaction: discord.Interaction, job_id: int | None) -> Job:
        if job_id is None:
            target = await self.bot.store.latest_done(interaction.user.id, interaction.guild_id)
            if target is None:
                raise UserError("You have no finished video here yet; make one with /animate first.")
        else:
            target = await job_on_server(self.bot.store, job_id, interaction.guild_id)
            if target.status is not JobStatus.DONE or target.kind is JobKind.MUX:
                raise UserError(f"Job {job_id} has no finished video to put audio on; pick a finished /animate job.")
            if not checks.can_mux(target, interaction.user.id, interaction.permissions):
                raise UserError(f"Job {job_id} is another member's video; /mux one of your own videos.")
        if target.params is not None and target.params.format != "mp4":
            raise UserError(f"Job {target.id} is a {target.params.format.upper()}, which has no sound; /mux an MP4.")
        if not await self.bot.store.blobs.exists(target.result_path):
            raise UserError(f"The video of job {target.id} is no longer kept on the host; render it again first.")
        return target

    async def _keep(self, path: Path) -> str:
        """Hand the saved upload to the store's blobs (a worker on another host reads it from the
        database); what the job records as its ``audio_path``."""
        key = upload_key(path)
        await self.bot.store.blobs.save(key, path)
        return self.bot.store.blobs.ref(key)

    async def _download(self, audio: discord.Attachment, path: Path) -> None:
        """Save the attachment, reading at most ``MAX_AUDIO_BYTES`` whatever its declared size was."""
        too_big = f"That file is larger than {format_bytes(MAX_AUDIO_BYTES)}; send a smaller one."
        data = await download_capped(self.bot.session, audio.url, cap=MAX_AUDIO_BYTES, seconds=DOWNLOAD_SECONDS,
                                     what="file", too_big=too_big, again="attach it again")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Mux(bot))

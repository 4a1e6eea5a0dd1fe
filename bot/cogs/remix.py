"""Remix: the same seed and settings with an edited prompt, from a result's Remix button or from any
video's recipe (the message context menu **Remix**).

One form, :class:`RemixModal`, prefilled with the prompt, the negative prompt and the other
settings (as JSON, the seed among them), and both ways of opening it:

- the Remix button on a result (``bot.job_buttons`` dispatches its click here as ``job_remix``)
  opens it with the job's parameters;
- the context menu works on any message with an animabot video, even one re-uploaded by someone
  else: the attachment is downloaded (capped) and the recipe read from the file itself.

The form's ``custom_id`` (``animabot:remix-form:42``; ``0`` when the video's job is not on this
server) is all a submission needs besides the typed values, so submissions arrive through
``on_interaction``, matched by that id: they need nothing kept in memory and work after a restart.

A clip that began from a picture starts from a picture again, never one named by a key a member
typed or a file carried (issue 20): the button's remix from the job's stored picture (the job is
this server's), the context menu's from frame 0 of the file in the message, kept as a new picture of
this server. The form of such a file names the message too (``animabot:remix-form:42:1234``); the
submission downloads it again, after its defer, so the form still opens within Discord's 3 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.actions import job_on_server
from bot.answers import answer_queued
from bot.download import download_capped
from bot.pictures import MAX_VIDEO_BYTES, from_attachment, video_frame_params
from bot.text import limits
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.request.recipe import is_recipe, recipe_params
from engine.store.jobs import JobKind

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

FORM_ID = re.compile(r"animabot:remix-form:(?P<parent>\d+)(?::(?P<message>\d+))?")
TEXT_LIMIT = 1000  # as /animate's prompt option
TEXT_FIELDS = ("prompt", "negative_prompt")
NOT_SETTINGS = (*TEXT_FIELDS, "image_key")  # the picture comes from the job or the file, never from the form
DOWNLOAD_SECONDS = 2.5  # a modal must open within Discord's 3 s
VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")


def settings_text(params: RenderParams) -> str:
    """Every setting but the two texts and the picture, as one line of JSON."""
    data = {k: v for k, v in params.to_dict().items() if k not in NOT_SETTINGS}
    return json.dumps(data, separators=(", ", ": "))


def parse_settings(text: str) -> dict[str, Any]:
    """The settings a member left (or edited) in the form; ``UserError`` when they do not read."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError('The settings must stay a JSON object like {"seed": 42, "frames": 16}; open Remix again.')
    data.pop("image_key", None)  # in forms opened before it was left out: the picture is not the member's to name
    known = set(RenderParams.__dataclass_fields__) - set(NOT_SETTINGS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"Unknown setting(s) {', '.join(unknown)}; choose from: {', '.join(sorted(known))}.")
    return data


class RemixModal(discord.ui.Modal):
    """The Remix form. Submissions are handled by the cog's ``on_interaction``, which also sees those
    sent after a restart; ``on_submit`` is left as discord.py's no-op."""

    def __init__(self, params: RenderParams, parent_id: int | None, title: str, video_id: int | None = None) -> None:
        """``video_id``: the message whose video's frame 0 the remix starts from (a file that began from a picture)."""
        super().__init__(
            title=limits.shorten(title, limits.MODAL_TITLE),
            custom_id=f"animabot:remix-form:{parent_id or 0}" + (f":{video_id}" if video_id else ""),
            timeout=900,
        )
        self.add_item(discord.ui.TextInput(
            label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph,
            default=limits.shorten(params.prompt, TEXT_LIMIT), max_length=TEXT_LIMIT,
        ))  # fmt: skip
        self.add_item(discord.ui.TextInput(
            label="Negative prompt", custom_id="negative_prompt", style=discord.TextStyle.paragraph,
            default=limits.shorten(params.negative_prompt, TEXT_LIMIT) or None, max_length=TEXT_LIMIT, required=False,
        ))  # fmt: skip
        self.add_item(discord.ui.TextInput(
            label="Settings (JSON; the seed stays the same)", custom_id="settings", style=discord.TextStyle.paragraph,
            default=settings_text(params), max_length=limits.TEXT_INPUT_VALUE,
        ))  # fmt: skip


def submitted_values(data: dict) -> dict[str, str]:
    """``custom_id → value`` of a form submission's text inputs (in action rows or labels)."""
    values: dict[str, str] = {}
    stack = list(data.get("components") or [])
    while stack:
        component = stack.pop()
        if "custom_id" in component and "value" in component:
            values[component["custom_id"]] = component["value"]
        stack.extend(component.get("components") or [])
        if isinstance(component.get("component"), dict):
            stack.append(component["component"])
    return values


def video_attachment(message: discord.Message) -> discord.Attachment:
    """The message's first MP4, GIF or WebP; ``UserError`` when it has none."""
    for attachment in message.attachments:
        if attachment.filename.lower().endswith(VIDEO_SUFFIXES):
            return attachment
    raise UserError("That message has no MP4, GIF or WebP; use Remix on a message with an animabot video.")


class Remix(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Remix", callback=self.remix_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    # -- opening the form ---------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_job_remix(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Remix button: the form, with the job's settings (a form must be the first answer: no defer)."""
        job = await job_on_server(self.bot.store, job_id, interaction.guild_id)
        if job.params is None:
            raise UserError(f"Job {job.id} only added audio; remix the video it used (job {job.parent_id}).")
        await interaction.response.send_modal(RemixModal(job.params, job.id, f"Remix job {job.id}"))

    async def remix_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The context menu: read the recipe inside the message's video and open the form with it."""
        recipe = await self._read_recipe(video_attachment(message))
        if not is_recipe(recipe):
            raise UserError("That video carries no animabot recipe; Remix works on videos animabot rendered.")
        params = recipe_params(recipe)  # began from a picture: an image_key that fetches nothing
        parent = await self._parent(recipe, params.seed, interaction.guild_id)
        video_id = message.id if params.image_key is not None else None
        await interaction.response.send_modal(RemixModal(params, parent, "Remix this video", video_id))

    async def _read_recipe(self, attachment: discord.Attachment) -> dict | None:
        """The recipe inside the attachment, refused past ``MAX_VIDEO_BYTES`` whether declared or streamed."""
        from engine.video.read import read_recipe  # ffmpeg side; imported only when needed

        too_big = "That video is too large to read a recipe from; Remix works on animabot's own uploads."
        if attachment.size > MAX_VIDEO_BYTES:
            raise UserError(too_big)
        data = await download_capped(self.bot.session, attachment.url, cap=MAX_VIDEO_BYTES, seconds=DOWNLOAD_SECONDS,
                                     what="video", too_big=too_big, again="try Remix again")  # fmt: skip
        folder = self.bot.config.data_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            path = Path(tmp) / f"remix{Path(attachment.filename).suffix.lower()}"
            await asyncio.to_thread(path.write_bytes, data)
            return await asyncio.to_thread(read_recipe, path)

    async def _parent(self, recipe: dict, seed: int | None, guild_id: int | None) -> int | None:
        """The recipe's job when it is this server's (same seed); ``None`` for a video from elsewhere."""
        job_id = recipe.get("job")
        if not isinstance(job_id, int):
            return None
        job = await self.bot.store.get(job_id)
        return job.id if job is not None and job.guild_id == guild_id and job.seed == seed else None

    # -- a submitted form ---------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        match = FORM_ID.fullmatch((interaction.data or {}).get("custom_id", ""))
        if match is not None:
            await self.submit(interaction, int(match["parent"]), int(match["message"] or 0))

    async def submit(self, interaction: discord.Interaction, parent_id: int, video_id: int = 0) -> None:
        """Queue the remix a member submitted: their texts, the settings they kept, linked to ``parent_id``,
        from frame 0 of message ``video_id``'s video when given, else from the parent's picture if it had one."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        values = submitted_values(interaction.data or {})
        settings = parse_settings(values.get("settings", ""))
        texts = {"prompt": values.get("prompt", ""), "negative_prompt": values.get("negative_prompt", "")}
        params = RenderParams.parse({**settings, **texts})  # JSON a member typed: the request's schema
        parent = await self.bot.store.get(parent_id) if parent_id else None
        if parent is not None and parent.guild_id != interaction.guild_id:
            parent = None
        if video_id:
            params = await self._from_video(interaction, params, video_id)
        elif parent is not None and parent.params is not None and parent.params.image_key is not None:
            params = dataclasses.replace(params, image_key=parent.params.image_key)  # this server's stored picture
        notes: list[str] = []
        job = await self.bot.actions.queue_render(
            JobKind.ANIMATE, params, user_id=interaction.user.id, guild_id=interaction.guild_id,
            channel_id=interaction.channel_id, parent_id=parent.id if parent else None, notes=notes,
        )  # fmt: skip
        log.info("job %d is a remix of %s by user %d", job.id, f"job {parent.id}" if parent else "a video", job.user_id)
        await answer_queued(interaction, self.bot.store, job, notes)

    async def _from_video(self, interaction: discord.Interaction, params: RenderParams, video_id: int) -> RenderParams:
        """``params`` from frame 0 of the video in message ``video_id`` of the form's channel."""
        try:
            message = await interaction.channel.fetch_message(video_id)
        except discord.NotFound:
            raise UserError("The message with that video is gone; use Remix on a message that has it.") from None
        attachment = video_attachment(message)
        return await video_frame_params(
            self.bot.store, self.bot.config, self.bot.session, params, from_attachment(attachment),
            suffix=Path(attachment.filename).suffix.lower(), user_id=interaction.user.id,
            guild_id=interaction.guild_id, channel_id=interaction.channel_id,
        )  # fmt: skip


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Remix(bot))

"""Remix: the same seed and settings with an edited prompt, from a job's button or from any video's recipe.

One modal, :class:`RemixModal`, prefilled with the prompt, the negative prompt and the other
settings (as JSON, the seed among them). Its ``custom_id`` (``animabot:remix-form:42``; ``0`` when
the video's job is not on this server) is all a submission needs besides the typed values, so
:func:`submit` handles it statelessly, also after a restart (``bot.cogs.remix`` routes it).
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot import actions
from bot.download import download_capped
from bot.text.messages import clip, queued_reply
from engine.errors import UserError
from engine.request.params import RenderParams
from engine.store.jobs import JobKind

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

FORM_ID = re.compile(r"animabot:remix-form:(?P<parent>\d+)")
TEXT_LIMIT = 1000  # as /animate's prompt option
SETTINGS_LIMIT = 4000  # Discord's longest text input
TEXT_FIELDS = ("prompt", "negative_prompt")
MAX_VIDEO_BYTES = 25 * 1024 * 1024  # the largest attachment a context-menu Remix downloads
DOWNLOAD_SECONDS = 2.5  # a modal must open within Discord's 3 s
VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")


def settings_text(params: RenderParams) -> str:
    """Every setting but the two texts, as one line of JSON."""
    data = {k: v for k, v in params.to_dict().items() if k not in TEXT_FIELDS}
    return json.dumps(data, separators=(", ", ": "))


def parse_settings(text: str) -> dict[str, Any]:
    """The settings a member left (or edited) in the modal; ``UserError`` when they do not read."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError('The settings must stay a JSON object like {"seed": 42, "frames": 16}; open Remix again.')
    known = set(RenderParams.__dataclass_fields__) - set(TEXT_FIELDS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"Unknown setting(s) {', '.join(unknown)}; choose from: {', '.join(sorted(known))}.")
    return data


class RemixModal(discord.ui.Modal):
    """The Remix form. Submissions are handled by :func:`submit` through the cog's listener, which
    also sees those sent after a restart; ``on_submit`` is left as discord.py's no-op."""

    def __init__(self, params: RenderParams, parent_id: int | None, title: str) -> None:
        super().__init__(title=clip(title, 45), custom_id=f"animabot:remix-form:{parent_id or 0}", timeout=900)
        self.add_item(discord.ui.TextInput(
            label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph,
            default=clip(params.prompt, TEXT_LIMIT), max_length=TEXT_LIMIT,
        ))  # fmt: skip
        self.add_item(discord.ui.TextInput(
            label="Negative prompt", custom_id="negative_prompt", style=discord.TextStyle.paragraph,
            default=clip(params.negative_prompt, TEXT_LIMIT) or None, max_length=TEXT_LIMIT, required=False,
        ))  # fmt: skip
        self.add_item(discord.ui.TextInput(
            label="Settings (JSON; the seed stays the same)", custom_id="settings", style=discord.TextStyle.paragraph,
            default=settings_text(params), max_length=SETTINGS_LIMIT,
        ))  # fmt: skip


def submitted_values(data: dict) -> dict[str, str]:
    """``custom_id → value`` of a modal submission's text inputs (in action rows or labels)."""
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


async def submit(interaction: discord.Interaction, parent_id: int) -> None:
    """Queue the remix a member submitted: their texts, the settings they kept, linked to ``parent_id``."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    bot: AnimaBot = interaction.client  # type: ignore[assignment]
    values = submitted_values(interaction.data or {})
    settings = parse_settings(values.get("settings", ""))
    try:
        params = RenderParams(prompt=values.get("prompt", ""), negative_prompt=values.get("negative_prompt", ""),
                              **settings)  # fmt: skip
    except TypeError as err:
        raise UserError(f"The settings could not be used ({err}); open Remix again.") from None
    parent = await bot.store.get(parent_id) if parent_id else None
    if parent is not None and parent.guild_id != interaction.guild_id:
        parent = None
    notes: list[str] = []
    job = await actions.queue_render(
        bot, JobKind.ANIMATE, params, user_id=interaction.user.id, guild_id=interaction.guild_id,
        channel_id=interaction.channel_id, parent_id=parent.id if parent else None, notes=notes,
    )  # fmt: skip
    interaction.extras["job_id"] = job.id
    log.info("job %d is a remix of %s by user %d", job.id, f"job {parent.id}" if parent else "a video", job.user_id)
    text = queued_reply(job, (await bot.store.queue_positions([job.id]))[job.id])
    from bot.replies import reply

    await reply(interaction, " ".join([text, *notes]))


# -- a video posted anywhere ----------------------------------------------------------------------
def video_attachment(message: discord.Message) -> discord.Attachment:
    """The message's first MP4, GIF or WebP; ``UserError`` when it has none."""
    for attachment in message.attachments:
        if attachment.filename.lower().endswith(VIDEO_SUFFIXES):
            return attachment
    raise UserError("That message has no MP4, GIF or WebP; use Remix on a message with an animabot video.")


async def download(bot: AnimaBot, attachment: discord.Attachment, limit: int = MAX_VIDEO_BYTES) -> bytes:
    """The attachment's bytes (``bot.download``), refused past ``limit`` whether declared or streamed."""
    too_big = "That video is too large to read a recipe from; Remix works on animabot's own uploads."
    if attachment.size > limit:
        raise UserError(too_big)
    return await download_capped(bot, attachment.url, cap=limit, seconds=DOWNLOAD_SECONDS, what="video",
                                 too_big=too_big, again="try Remix again")  # fmt: skip

"""``/animate`` and the reactions on its messages (🔄 re-roll, ❌ cancel or delete)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import actions, checks
from bot.messages import CANCEL_EMOJI, REROLL_EMOJI, queued_reply, user_ref
from bot.replies import NO_MENTIONS, reply
from engine.errors import UserError
from engine.queue.jobs import JobKind
from engine.render.params import FORMATS, LOOPS, MAX_FPS, MAX_FRAMES, MAX_SEED, MAX_STEPS, MOTIONS

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

SIZES = {"square": (512, 512), "landscape": (768, 512), "portrait": (512, 768)}
SIZE_CHOICES = [
    app_commands.Choice(name="square 512×512", value="square"),
    app_commands.Choice(name="landscape 768×512", value="landscape"),
    app_commands.Choice(name="portrait 512×768", value="portrait"),
]
MOTION_CHOICES = [app_commands.Choice(name=motion, value=motion) for motion in MOTIONS]
# -- clips people share (issue 12) --
LOOP_CHOICES = [app_commands.Choice(name=loop, value=loop) for loop in LOOPS]
SMOOTH_CHOICES = [
    app_commands.Choice(name="off", value=1),
    app_commands.Choice(name="×2 (twice the fps)", value=2),
    app_commands.Choice(name="×4 (four times the fps)", value=4),
]
FORMAT_CHOICES = [app_commands.Choice(name=fmt.upper(), value=fmt) for fmt in FORMATS]
REFUSAL_SECONDS = 30  # how long a refused reaction's explanation stays in the channel


class Animate(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @app_commands.command(name="animate", description="Turn a text prompt into a short AI video.")
    @app_commands.guild_only()
    @checks.bot_may_post()
    @app_commands.describe(
        prompt='What the video shows; keyframes look like "0: a cat | 24: a tiger"',
        negative="What the video should not show",
        frames="How many frames to render",
        fps="Frames per second of the video",
        seed="Random seed, to repeat a result (random when left out)",
        steps="Denoising steps per frame (more is slower and finer)",
        guidance="How closely to follow the prompt",
        strength="How much each frame may change the previous one (0 keeps only the outlines)",
        motion="Camera motion between frames",
        size="Picture size",
        loop="none, pingpong (plays forward then back) or seamless (the end flows into the start)",
        smooth="In-between frames by optical flow: a smoother clip at a higher fps, no extra render time",
        format="MP4 (default), GIF (autoplays inline) or animated WebP",
    )
    @app_commands.choices(motion=MOTION_CHOICES, size=SIZE_CHOICES)
    @app_commands.choices(loop=LOOP_CHOICES, smooth=SMOOTH_CHOICES, format=FORMAT_CHOICES)
    async def animate(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1000],
        negative: app_commands.Range[str, 1, 1000] | None = None,
        frames: app_commands.Range[int, 1, MAX_FRAMES] | None = None,
        fps: app_commands.Range[int, 1, MAX_FPS] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        strength: app_commands.Range[float, 0.0, 0.95] | None = None,
        motion: app_commands.Choice[str] | None = None,
        size: app_commands.Choice[str] | None = None,
        loop: app_commands.Choice[str] | None = None,
        smooth: app_commands.Choice[int] | None = None,
        format: app_commands.Choice[str] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        width, height = SIZES[size.value] if size is not None else (None, None)
        params = self.bot.config.defaults(
            prompt, negative_prompt=negative, frames=frames, fps=fps, seed=seed, steps=steps,
            guidance=guidance, strength=strength, motion=motion.value if motion else None,
            width=width, height=height,
            **{name: choice.value for name, choice in (("loop", loop), ("smooth", smooth), ("format", format)) if choice},
        )  # fmt: skip
        notes: list[str] = []
        job = await actions.queue_render(
            self.bot, JobKind.ANIMATE, params,
            user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id, notes=notes,
        )  # fmt: skip
        interaction.extras["job_id"] = job.id
        text = queued_reply(job, (await self.bot.store.queue_positions([job.id]))[job.id])
        await reply(interaction, " ".join([text, *notes]))

    # -- reactions ----------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        emoji = str(payload.emoji)
        if emoji not in (REROLL_EMOJI, CANCEL_EMOJI) or payload.guild_id is None:
            return
        if self.bot.user is not None and payload.user_id == self.bot.user.id:
            return  # the bot's own 🔄 and ❌ on its results
        if payload.member is not None and payload.member.bot:
            return
        job = await self.bot.store.find_by_post(payload.message_id)
        if job is None:
            return
        try:
            if emoji == REROLL_EMOJI:
                new = await actions.reroll(
                    self.bot, job, user_id=payload.user_id, guild_id=payload.guild_id, channel_id=payload.channel_id
                )
                log.info("job %d queued by a %s reaction on message %d", new.id, emoji, payload.message_id)
            else:
                await actions.cancel_or_delete(
                    self.bot, job, user_id=payload.user_id, permissions=self._permissions(payload)
                )
        except UserError as err:
            await self._explain(payload, str(err))
        except Exception:
            log.exception("%s reaction on job %d failed", emoji, job.id)

    def _permissions(self, payload: discord.RawReactionActionEvent) -> discord.Permissions:
        channel = self.bot.get_channel(payload.channel_id)
        if channel is None or payload.member is None or not hasattr(channel, "permissions_for"):
            return discord.Permissions.none()
        return channel.permissions_for(payload.member)

    async def _explain(self, payload: discord.RawReactionActionEvent, text: str) -> None:
        """A reaction has no private reply: say why in the channel, briefly."""
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        try:
            await channel.send(
                f"{user_ref(payload.user_id)} {text}", allowed_mentions=NO_MENTIONS, delete_after=REFUSAL_SECONDS
            )
        except discord.HTTPException:
            log.warning("could not explain a refused reaction in channel %d", payload.channel_id)


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Animate(bot))

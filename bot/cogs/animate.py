"""``/animate``, and re-roll and cancel on its messages: the 🔄/❌ reactions and the Re-roll and
Cancel buttons (``bot.job_buttons`` dispatches their clicks here, as ``job_reroll``/``job_cancel``).

``/animate image:`` starts the video from the member's picture (``bot.pictures``); the Animate
context menu on a message with a picture is ``bot.cogs.animate_picture``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, model_choices, pictures
from bot.actions import job_on_server
from bot.answers import answer_queued
from bot.replies import NO_MENTIONS, reply
from bot.text import limits
from bot.text.messages import CANCEL_EMOJI, REROLL_EMOJI, user_ref
from engine.errors import UserError
from engine.request.params import CONTROLS, FORMATS, LOOPS, MAX_FPS, MAX_FRAMES, MAX_SEED, MAX_STEPS, MOTIONS
from engine.request.picture import SIZES
from engine.store.jobs import JobKind

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

SIZE_CHOICES = [
    app_commands.Choice(name="square 512×512", value="square"),
    app_commands.Choice(name="landscape 768×512", value="landscape"),
    app_commands.Choice(name="portrait 512×768", value="portrait"),
]
MOTION_CHOICES = [app_commands.Choice(name=motion, value=motion) for motion in MOTIONS]
CONTROL_WORDS = {"canny": "keep the edges", "depth": "keep the depth (zooms, turns)", "pose": "keep a body's pose"}
CONTROL_CHOICES = [app_commands.Choice(name=f"{c}: {CONTROL_WORDS[c]}", value=c) for c in CONTROLS]
# -- clips people share (issue 12) --
LOOP_CHOICES = [app_commands.Choice(name=loop, value=loop) for loop in LOOPS]
SMOOTH_CHOICES = [
    app_commands.Choice(name="off", value=1),
    app_commands.Choice(name="×2 (twice the fps)", value=2),
    app_commands.Choice(name="×4 (four times the fps)", value=4),
]
FORMAT_CHOICES = [app_commands.Choice(name=fmt.upper(), value=fmt) for fmt in FORMATS]
# -- coherent motion (issue 24); "motion" is offered only where [engine] motion_adapter is set (Animate.__init__)
COHERENCE_CHOICES = [
    app_commands.Choice(name="off", value="off"),
    app_commands.Choice(name="cross-frame: frames look at the first and the last frame", value="cross-frame"),
]
MOTION_COHERENCE = app_commands.Choice(name="motion: AnimateDiff draws the frames together", value="motion")
REFUSAL_SECONDS = 30  # how long a refused reaction's explanation stays in the channel


class Animate(commands.Cog):
    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot
        if bot.config.engine.motion_adapter:  # choices are fixed at definition: this cog's own copy gets motion
            params = self.animate._params  # the copy discord.py made for this cog (a dict of its own)
            params["coherence"] = dataclasses.replace(
                params["coherence"], choices=[*COHERENCE_CHOICES, MOTION_COHERENCE]
            )

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
        model="Which model draws it (/models lists them)",
        lora='LoRAs to add: a name, or name:weight, several separated by commas ("pixel:0.8, ink")',
        size="Picture size (with an image: the closest to its shape when left out)",
        image="A picture to start from: it is the first frame",
        image_strength="0 keeps your picture as the first frame; up to 1 re-draws it with the prompt",
        control="What holds the frames together",
        loop="none, pingpong (plays forward then back) or seamless (the end flows into the start)",
        smooth="In-between frames by optical flow: a smoother clip at a higher fps, no extra render time",
        format="MP4 (default), GIF (autoplays inline) or animated WebP",
        coherence="cross-frame: steadier textures (slower); motion (where offered): AnimateDiff draws frames together",
    )
    @app_commands.choices(motion=MOTION_CHOICES, size=SIZE_CHOICES, control=CONTROL_CHOICES)
    @app_commands.choices(loop=LOOP_CHOICES, smooth=SMOOTH_CHOICES, format=FORMAT_CHOICES)
    @app_commands.choices(coherence=COHERENCE_CHOICES)
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
        model: app_commands.Range[str, 1, 100] | None = None,
        lora: app_commands.Range[str, 1, 200] | None = None,
        image: discord.Attachment | None = None,
        image_strength: app_commands.Range[float, 0.0, 1.0] | None = None,
        control: app_commands.Choice[str] | None = None,
        loop: app_commands.Choice[str] | None = None,
        smooth: app_commands.Choice[int] | None = None,
        format: app_commands.Choice[str] | None = None,
        coherence: app_commands.Choice[str] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        width, height = SIZES[size.value] if size is not None else (None, None)
        loras = model_choices.parse_lora_option(self.bot.config.catalog, lora)
        params = self.bot.config.defaults(
            prompt, negative_prompt=negative, frames=frames, fps=fps, seed=seed, steps=steps,
            guidance=guidance, strength=strength, motion=motion.value if motion else None,
            width=width, height=height, model=model.strip() if model else None, loras=loras or None,
            image_strength=image_strength, control=control.value if control else None,
            coherence=coherence.value if coherence else None,
            **{name: choice.value for name, choice in (("loop", loop), ("smooth", smooth), ("format", format)) if choice},
        )  # fmt: skip
        notes: list[str] = []
        if image is not None:
            params, picture = await pictures.picture_params(
                self.bot.store, self.bot.config, self.bot.session, params, pictures.from_attachment(image),
                size_given=size is not None, user_id=interaction.user.id, guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
            )  # fmt: skip
            notes += [picture.note] if picture.note else []
        job = await self.bot.actions.queue_render(
            JobKind.ANIMATE, params,
            user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id, notes=notes,
        )  # fmt: skip
        await answer_queued(interaction, self.bot.store, job, notes)

    @animate.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        models, _ = await model_choices.guild_choices(self.bot.store, self.bot.config, interaction.guild_id)
        names = self.bot.config.catalog.model_choices(current, models)
        return [app_commands.Choice(name=name, value=name) for name in names]

    @animate.autocomplete("lora")
    async def lora_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        _, loras = await model_choices.guild_choices(self.bot.store, self.bot.config, interaction.guild_id)
        values = self.bot.config.catalog.lora_choices(current, loras)
        return [app_commands.Choice(name=value, value=value) for value in values]

    # -- the buttons ---------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_job_reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Re-roll button: the job again with a new seed, as the clicking member's request here."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        checks.bot_can_post(interaction)
        job = await job_on_server(self.bot.store, job_id, interaction.guild_id)
        new = await self.bot.actions.reroll(
            job, user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id
        )
        await answer_queued(interaction, self.bot.store, new)

    @commands.Cog.listener()
    async def on_job_cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Cancel button: cancel the job, or delete its post once finished, if the member may."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await job_on_server(self.bot.store, job_id, interaction.guild_id)
        text = await self.bot.actions.cancel_or_delete(
            job, user_id=interaction.user.id, permissions=interaction.permissions
        )
        await reply(interaction, text)

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
                new = await self.bot.actions.reroll(
                    job, user_id=payload.user_id, guild_id=payload.guild_id, channel_id=payload.channel_id
                )
                log.info("job %d queued by a %s reaction on message %d", new.id, emoji, payload.message_id)
            else:
                await self.bot.actions.cancel_or_delete(
                    job, user_id=payload.user_id, permissions=self._permissions(payload)
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
                limits.fill("{who} {text}", who=user_ref(payload.user_id), text=text),
                allowed_mentions=NO_MENTIONS,
                delete_after=REFUSAL_SECONDS,
            )
        except discord.HTTPException:
            log.warning("could not explain a refused reaction in channel %d", payload.channel_id)


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Animate(bot))

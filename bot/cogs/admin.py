"""``/limits show|set|reset``: per-guild limits, for members with Manage Server.

The group's default permissions hide it from others in the client; the ``manages_server`` check
on each command is what actually enforces it (server admins can change who sees a command).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.guild_limits import get_limits, reset_limits, set_limits
from bot.model_choices import check_admin_names
from bot.replies import reply
from bot.text.messages import limits_text
from engine.errors import UserError
from engine.request.params import MAX_FPS, MAX_FRAMES, MAX_SIDE, MAX_STEPS

if TYPE_CHECKING:
    from bot.client import AnimaBot

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class Admin(commands.Cog):
    limits = app_commands.Group(
        name="limits",
        description="This server's render limits (Manage Server).",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: AnimaBot) -> None:
        self.bot = bot

    @limits.command(name="show", description="Show this server's render limits.")
    @checks.manages_server()
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reply(
            interaction,
            limits_text(
                await get_limits(self.bot.store, interaction.guild_id, defaults=self.bot.config.limits),
                safety=self.bot.config.safety,
            ),
        )

    @limits.command(name="set", description="Change some of this server's render limits.")
    @checks.manages_server()
    @app_commands.describe(
        max_frames="Most frames per video",
        max_steps="Most denoising steps per frame",
        max_side="Largest picture side in pixels",
        max_fps="Highest frames per second",
        daily_quota="Renders per user per UTC day (0 turns renders off)",
        max_queued_per_user="Jobs one user may have waiting at once",
        cooldown_seconds="Seconds a user waits between requests",
        upload_limit_mib="Largest video to upload, in MiB (bigger ones are re-encoded to fit)",
        channel="Allow renders only in this channel (adds to the list)",
        all_channels="Allow renders in every channel again",
        models='Models members may pick, comma-separated ("all": every configured one)',
        loras='LoRAs members may pick, comma-separated ("all": every configured one)',
        pictures="Whether members may start a video from their own picture",
        controls="Controls members may use, comma-separated: canny, depth, pose (or all)",
        safety="Outside age-restricted channels: block flagged renders, post them as spoilers, or check nothing",
        banned_words='Words refused in prompts here, comma-separated ("none": only the host\'s)',
    )
    async def set_(
        self,
        interaction: discord.Interaction,
        max_frames: app_commands.Range[int, 1, MAX_FRAMES] | None = None,
        max_steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        max_side: app_commands.Range[int, 64, MAX_SIDE] | None = None,
        max_fps: app_commands.Range[int, 1, MAX_FPS] | None = None,
        daily_quota: app_commands.Range[int, 0, 100000] | None = None,
        max_queued_per_user: app_commands.Range[int, 1, 1000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 86400] | None = None,
        upload_limit_mib: app_commands.Range[float, 0.01, 500.0] | None = None,
        channel: discord.TextChannel | None = None,
        all_channels: bool | None = None,
        models: app_commands.Range[str, 1, 1000] | None = None,
        loras: app_commands.Range[str, 1, 1000] | None = None,
        pictures: bool | None = None,
        controls: app_commands.Range[str, 1, 100] | None = None,
        safety: Literal["block", "spoiler", "off"] | None = None,
        banned_words: app_commands.Range[str, 1, 1000] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        changes = {
            name: value
            for name, value in (
                ("max_frames", max_frames),
                ("max_steps", max_steps),
                ("max_side", max_side),
                ("max_fps", max_fps),
                ("daily_quota", daily_quota),
                ("max_queued_per_user", max_queued_per_user),
                ("cooldown_seconds", cooldown_seconds),
                ("allow_pictures", pictures),
                ("allowed_controls", controls),
                ("safety", safety),
            )  # fmt: skip
            if value is not None
        }
        if upload_limit_mib is not None:
            changes["upload_limit_bytes"] = int(upload_limit_mib * MiB)
        store = self.bot.store
        if all_channels:
            changes["allowed_channel_ids"] = None
        elif channel is not None:
            current = (
                await get_limits(store, interaction.guild_id, defaults=self.bot.config.limits)
            ).allowed_channel_ids
            changes["allowed_channel_ids"] = (*current, channel.id)
        changes.update(self._weight_changes(models, loras))
        if banned_words is not None:
            changes["banned_words"] = () if banned_words.strip().lower() == "none" else banned_words
        if not changes:
            raise UserError("Give at least one limit to change; /limits show lists them.")
        limits = await set_limits(store, interaction.guild_id, defaults=self.bot.config.limits, **changes)
        log.info("user %d changed limits of guild %d: %s", interaction.user.id, interaction.guild_id, changes)
        await reply(interaction, limits_text(limits, "Limits updated", self.bot.config.safety))

    def _weight_changes(self, models: str | None, loras: str | None) -> dict:
        """``models``/``loras`` as typed → ``allowed_models``/``allowed_loras`` changes (None: back to all)."""
        changes = {}
        for limit, text in (("allowed_models", models), ("allowed_loras", loras)):
            if text is None:
                continue
            names = [n.strip() for n in text.split(",") if n.strip()]
            changes[limit] = None if names == ["all"] else names
        check_admin_names(self.bot.config.catalog, changes.get("allowed_models"), changes.get("allowed_loras"))
        return changes

    @limits.command(name="reset", description="Put this server's render limits back to the defaults.")
    @checks.manages_server()
    async def reset(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        limits = await reset_limits(self.bot.store, interaction.guild_id, defaults=self.bot.config.limits)
        log.info("user %d reset the limits of guild %d", interaction.user.id, interaction.guild_id)
        await reply(interaction, limits_text(limits, "Limits reset to the defaults", self.bot.config.safety))


async def setup(bot: AnimaBot) -> None:
    await bot.add_cog(Admin(bot))

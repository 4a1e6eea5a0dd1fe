"""Building the fake's world before the bot connects: guilds, roles, channels, users and members.

:class:`WorldBuilding` is mixed into :class:`~.fake.FakeDiscord`; it writes to its ``state`` (and
reads ``bot_id``) and answers ids, the plain values tests pass back to the fake.
"""

from __future__ import annotations

from .models import DEFAULT_EVERYONE_PERMISSIONS, MANAGE_GUILD, THREAD, World


class WorldBuilding:
    """``fake.add_guild(...)``, ``fake.add_member(...)``, ``fake.default_world()`` and the like."""

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        shard: tuple[int, int] | None = None,
    ) -> int:
        """A guild with its @everyone role, the bot (and the guild owner) as members; with ``shard``
        ``(id, count)``, one whose id puts it on that shard. Add guilds before the bot connects: later
        ones are not announced with GUILD_CREATE."""
        return self.state.add_guild(name, everyone_permissions=everyone_permissions, shard=shard).id

    def add_role(self, guild_id: int, name: str, permissions: int) -> int:
        return self.state.add_role(guild_id, name, permissions).id

    def add_channel(self, guild_id: int, name: str = "general", *, nsfw: bool = False) -> int:
        """A text channel; ``nsfw``: marked age-restricted."""
        return self.state.add_channel(guild_id, name, nsfw=nsfw).id

    def add_thread(self, channel_id: int, name: str = "thread") -> int:
        """A public thread of text channel ``channel_id`` (age-restricted when its channel is)."""
        channel = self.state.channel(channel_id)
        return self.state.add_channel(channel.guild_id, name, type=THREAD, parent_id=channel.id).id

    def add_user(self, name: str, *, bot: bool = False) -> int:
        return self.state.add_user(name, bot=bot).id

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        name: str = "user",
        *,
        permissions: int = 0,
        roles: tuple[int, ...] | list[int] = (),
    ) -> int:
        """Make ``user_id`` (or a new user called ``name``) a member. ``permissions`` (on top of
        @everyone's) come through a new role named "<name> role". Returns the user id."""
        if user_id is None:
            user_id = self.add_user(name)
        role_ids = list(roles)
        if permissions:
            role_ids.append(self.add_role(guild_id, f"{self.state.user(user_id).name} role", permissions))
        self.state.add_member(guild_id, user_id, role_ids=role_ids)
        return user_id

    def default_world(self) -> World:
        """Guild "Test Guild" with #general, an admin (MANAGE_GUILD via role "Admin") and a
        plain member."""
        guild_id = self.add_guild("Test Guild")
        channel_id = self.add_channel(guild_id, "general")
        admin_role_id = self.add_role(guild_id, "Admin", MANAGE_GUILD)
        admin_id = self.add_member(guild_id, name="admin", roles=[admin_role_id])
        member_id = self.add_member(guild_id, name="member")
        return World(guild_id, channel_id, admin_id, member_id, self.bot_id, admin_role_id)

    def permissions_of(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        return self.state.permissions(guild_id, user_id, channel_id)

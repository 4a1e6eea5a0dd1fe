"""The ``job_replies`` table: how the front end answers a job's requester, and the results it holds.

Kept apart from the jobs table (migration 5) so the job rows stay neutral: the store keeps a
``handle`` it never looks inside (the bot's interaction token) and, for a result the front end
could not post for a reason that retrying will not fix, ``held`` with that reason. A held job is
not offered again by :meth:`held_jobs`' callers until it is released. Times come from the
database clock unless given.
"""

from __future__ import annotations


class ReplyRecords:
    """Mixed into :class:`engine.store.store.JobStore` (it needs ``_db``, ``_t`` and ``_now_sql``)."""

    async def set_reply_handle(self, job_id: int, handle: str, now: float | None = None) -> None:
        """Remember how to answer ``job_id``'s requester (replacing an older handle)."""
        await self._db.run(
            lambda tx: tx.execute(
                f"""INSERT INTO job_replies (job_id, handle, handle_at) VALUES (?, ?, COALESCE(?, {self._now_sql}))
                    ON CONFLICT (job_id) DO UPDATE SET handle = excluded.handle, handle_at = excluded.handle_at""",
                (job_id, handle, self._t(now)),
            )
        )

    async def reply_handle(self, job_id: int) -> tuple[str, float] | None:
        """``(handle, when it was given)`` for ``job_id``, or ``None``."""
        rows = await self._db.execute_fetchall(
            "SELECT handle, handle_at FROM job_replies WHERE job_id = ? AND handle IS NOT NULL", (job_id,)
        )
        return (rows[0]["handle"], rows[0]["handle_at"]) if rows else None

    async def hold(self, job_id: int, reason: str, now: float | None = None) -> None:
        """Hold ``job_id``'s result back: the front end could not post it, and says ``reason``."""
        await self._db.run(
            lambda tx: tx.execute(
                f"""INSERT INTO job_replies (job_id, held, held_at) VALUES (?, ?, COALESCE(?, {self._now_sql}))
                    ON CONFLICT (job_id) DO UPDATE SET held = excluded.held, held_at = excluded.held_at""",
                (job_id, reason, self._t(now)),
            )
        )

    async def release(self, job_id: int) -> None:
        """``job_id``'s result is no longer held back."""
        await self._db.run(
            lambda tx: tx.execute("UPDATE job_replies SET held = NULL, held_at = NULL WHERE job_id = ?", (job_id,))
        )

    async def held_jobs(self, *, user_id: int | None = None, guild_id: int | None = None) -> dict[int, str]:
        """Held job ids (of ``user_id`` in ``guild_id`` when given) → why, oldest first."""
        where, args = ["r.held IS NOT NULL"], []
        for column, value in (("j.user_id", user_id), ("j.guild_id", guild_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = await self._db.execute_fetchall(
            f"""SELECT r.job_id, r.held FROM job_replies r JOIN jobs j ON j.id = r.job_id
                WHERE {" AND ".join(where)} ORDER BY r.held_at, r.job_id""",
            args,
        )
        return {row["job_id"]: row["held"] for row in rows}

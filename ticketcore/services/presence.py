"""Who else is on a ticket: agents' heartbeats from the ticket page (``ticket_presence``).

The ticket page sends a heartbeat when it opens and every :data:`HEARTBEAT` seconds while it
stays open, saying ``viewing``, or ``replying`` while the agent has a draft. Another agent's
row newer than :data:`FRESH` counts as present. The rows are in the database, so agents on
different server processes see each other; nothing is kept in process memory. A closed page
simply stops beating and drops out after :data:`FRESH` (a page that says goodbye is removed
at once).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec

from ticketcore.errors import ValidationFailed

if TYPE_CHECKING:
    from ticketcore.app import App

MODES = ("viewing", "replying")
#: How often a page beats (seconds; the page's script reads it from the page).
HEARTBEAT = 15
#: How long a beat counts: a little over two heartbeats, so one late beat is forgiven.
FRESH = timedelta(seconds=2 * HEARTBEAT + 10)


class Present(msgspec.Struct, frozen=True, kw_only=True):
    """Another agent on the ticket now."""

    user_id: int
    name: str
    mode: str


class PresenceService:
    """Agents' presence on tickets (``app.presence``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def beat(self, user_id: int, ticket_id: int, mode: str) -> None:
        """Record that ``user_id`` is on ``ticket_id`` now, ``viewing`` or ``replying``."""
        if mode not in MODES:
            raise ValidationFailed(f"mode must be one of {', '.join(MODES)}", field="mode")
        async with self.db.transaction():
            await self.db.fetch(
                'INSERT INTO ticket_presence (ticket, "user", mode, seen_at) '
                "VALUES ({}, {}, {}, {}) "
                'ON CONFLICT (ticket, "user") DO UPDATE SET mode = excluded.mode, '
                "seen_at = excluded.seen_at",
                ticket_id,
                user_id,
                mode,
                self.app.clock.now(),
            )

    async def leave(self, user_id: int, ticket_id: int) -> None:
        """``user_id`` closed the ticket page."""
        async with self.db.transaction():
            await self.db.fetch(
                'DELETE FROM ticket_presence WHERE ticket = {} AND "user" = {}',
                ticket_id,
                user_id,
            )

    async def others(self, ticket_id: int, user_id: int) -> list[Present]:
        """The other active staff seen on ``ticket_id`` lately, replying ones first."""
        rows = await self.db.fetch(
            'SELECT p."user" AS user_id, u.name, p.mode FROM ticket_presence p '
            'JOIN app_user u ON u.id = p."user" '
            'WHERE p.ticket = {} AND p."user" <> {} AND p.seen_at > {} AND u.active = {} '
            "ORDER BY CASE p.mode WHEN 'replying' THEN 0 ELSE 1 END, u.name",
            ticket_id,
            user_id,
            self.app.clock.now() - FRESH,
            True,
        )
        return [
            Present(user_id=r["user_id"], name=str(r["name"]), mode=str(r["mode"])) for r in rows
        ]

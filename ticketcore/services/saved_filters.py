"""Agents' saved filters of the ticket list (``saved_filter``): a name and a
:class:`~ticketcore.domain.commands.TicketFilters`, per agent, stored server-side.

Each agent sees and changes only their own. Saving under a name the agent already uses
replaces that filter. Filters are checked when saved (an unknown status is refused then, not
when the queue is opened).
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from ticketcore.domain.commands import TicketFilters
from ticketcore.domain.enums import Status
from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.rows import dump_json, load_json

if TYPE_CHECKING:
    from ticketcore.app import App

MAX_FILTERS = 50
MAX_NAME = 100


class SavedFilter(msgspec.Struct, frozen=True, kw_only=True):
    """One of an agent's saved filters."""

    id: int
    name: str
    filters: TicketFilters
    created_at: datetime


def _from_row(row: dict[str, object]) -> SavedFilter:
    return SavedFilter(
        id=int(row["id"]),  # type: ignore[call-overload]
        name=str(row["name"]),
        filters=msgspec.convert(load_json(row["filters"]) or {}, TicketFilters),
        created_at=row["created_at"],  # type: ignore[arg-type]
    )


def check_filters(filters: TicketFilters) -> None:
    """Refuse filters the ticket list would refuse."""
    if filters.status is not None and filters.status not in {s.value for s in Status}:
        raise ValidationFailed(f"unknown status {filters.status!r}", field="status")
    if filters.q is not None and len(filters.q) > 200:
        raise ValidationFailed("the text may have at most 200 characters", field="q")


class SavedFilterService:
    """Saved filters of the agents (``app.saved_filters``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def list(self, agent: Principal) -> builtins.list[SavedFilter]:
        """The agent's saved filters, by name."""
        permissions.ensure_staff(agent, "saved filters")
        rows = await self.db.fetch(
            'SELECT id, name, filters, created_at FROM saved_filter WHERE "user" = {} '
            "ORDER BY name, id",
            agent.id,
        )
        return [_from_row(r) for r in rows]

    async def get(self, agent: Principal, filter_id: int) -> SavedFilter:
        """One of the agent's own filters (another agent's is a 404)."""
        permissions.ensure_staff(agent, "saved filters")
        rows = await self.db.fetch(
            'SELECT id, name, filters, created_at FROM saved_filter WHERE id = {} AND "user" = {}',
            filter_id,
            agent.id,
        )
        if not rows:
            raise NotFound(f"saved filter {filter_id} not found", field="filter_id")
        return _from_row(rows[0])

    async def save(self, agent: Principal, name: str, filters: TicketFilters) -> SavedFilter:
        """Save ``filters`` under ``name`` (replacing the agent's filter of that name)."""
        permissions.ensure_staff(agent, "saved filters")
        name = " ".join(name.split())
        if not 1 <= len(name) <= MAX_NAME:
            raise ValidationFailed(f"give a name of 1 to {MAX_NAME} characters", field="name")
        check_filters(filters)
        now = self.app.clock.now()
        async with self.db.transaction():
            count = await self.db.fetchval(
                'SELECT COUNT(*) AS n FROM saved_filter WHERE "user" = {} AND name <> {}',
                agent.id,
                name,
            )
            if int(count or 0) >= MAX_FILTERS:
                raise ValidationFailed(
                    f"at most {MAX_FILTERS} saved filters; delete one first", field="name"
                )
            rows = await self.db.fetch(
                'INSERT INTO saved_filter ("user", name, filters, created_at) '
                "VALUES ({}, {}, {}, {}) "
                'ON CONFLICT ("user", name) DO UPDATE SET filters = excluded.filters '
                "RETURNING id",
                agent.id,
                name,
                dump_json(msgspec.to_builtins(filters)),
                now,
            )
        return await self.get(agent, int(rows[0]["id"]))

    async def delete(self, agent: Principal, filter_id: int) -> None:
        """Delete one of the agent's own filters."""
        await self.get(agent, filter_id)
        async with self.db.transaction():
            await self.db.fetch(
                'DELETE FROM saved_filter WHERE id = {} AND "user" = {}', filter_id, agent.id
            )

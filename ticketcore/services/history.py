"""Recording history: events appended in the transaction of the change, and their outbox."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.models import Actor
from ticketcore.services.rows import dump_json

if TYPE_CHECKING:
    from ticketcore.app import App


class EventDraft(msgspec.Struct, kw_only=True):
    """An event about to be recorded: ``changes`` maps field to (old, new)."""

    kind: str
    changes: dict[str, tuple[Any, Any]] = {}
    data: dict[str, Any] = {}


async def record_events(
    app: App, ticket_id: int, actor: Actor, drafts: list[EventDraft], now: datetime
) -> list[int]:
    """Append events of one ticket (call inside the change's transaction) and queue their
    delivery to ``ticket_event`` hooks; return the new event ids."""
    return await record_events_many(app, [(ticket_id, actor, drafts)], now)


async def record_events_many(
    app: App, items: list[tuple[int, Actor, list[EventDraft]]], now: datetime
) -> list[int]:
    """Append the events of several tickets in one statement, in order; queue their
    delivery to ``ticket_event`` hooks in the same transaction; return the event ids."""
    rows_args = [
        [
            ticket_id,
            draft.kind,
            actor.kind,
            actor.id,
            actor.name,
            dump_json({k: list(v) for k, v in draft.changes.items()}),
            dump_json(draft.data),
            now,
        ]
        for ticket_id, actor, drafts in items
        for draft in drafts
    ]
    if not rows_args:
        return []
    values = ", ".join(["({}, {}, {}, {}, {}, {}, {}, {})"] * len(rows_args))
    rows = await app.db.fetch(
        "INSERT INTO ticket_event (ticket, kind, actor_kind, actor_id, actor_name, changes, "
        f"data, created_at) VALUES {values} RETURNING id",
        *[value for row in rows_args for value in row],
    )
    ids = sorted(row["id"] for row in rows)
    if app.hooks.implementers("ticket_event"):
        await app.jobs.enqueue_many(
            "ticket_event", [({"event_id": i}, f"ticket_event:{i}") for i in ids]
        )
    # Automation rules see the events from the outbox too, after commit (one job per write).
    await app.automation.enqueue_events(ids, [str(row[1]) for row in rows_args])
    return ids

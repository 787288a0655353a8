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
    """Append events (call inside the change's transaction) and queue their delivery to
    ``ticket_event`` hooks; return the new event ids."""
    if not drafts:
        return []
    values = ", ".join(["({}, {}, {}, {}, {}, {}, {}, {})"] * len(drafts))
    args: list[Any] = []
    for draft in drafts:
        args += [
            ticket_id,
            draft.kind,
            actor.kind,
            actor.id,
            actor.name,
            dump_json({k: list(v) for k, v in draft.changes.items()}),
            dump_json(draft.data),
            now,
        ]
    rows = await app.db.fetch(
        "INSERT INTO ticket_event (ticket, kind, actor_kind, actor_id, actor_name, changes, "
        f"data, created_at) VALUES {values} RETURNING id",
        *args,
    )
    ids = [row["id"] for row in rows]
    if app.hooks.implementers("ticket_event"):
        for event_id in ids:
            await app.jobs.enqueue(
                "ticket_event", {"event_id": event_id}, key=f"ticket_event:{event_id}"
            )
    return ids

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
    app: App,
    items: list[tuple[int, Actor, list[EventDraft]]],
    now: datetime,
    *,
    automate: bool = True,
    along: tuple[str, list[Any]] | None = None,
) -> list[int]:
    """Append the events of several tickets in one statement, in order; queue their
    delivery to ``ticket_event`` hooks in the same transaction; return the event ids.

    ``automate=False``: the caller has evaluated the automation rules on these events
    itself (a new ticket's, see :mod:`ticketcore.services.automation_inline`), so no
    ``automation`` job is queued. ``along``: one more write statement (``{}`` placeholders,
    its arguments) to run with the insert; on PostgreSQL it rides in the same round trip
    as a data-modifying ``WITH`` and must not read the events.
    """
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
    insert = (
        "INSERT INTO ticket_event (ticket, kind, actor_kind, actor_id, actor_name, changes, "
        f"data, created_at) VALUES {values} RETURNING id"
    )
    args = [value for row in rows_args for value in row]
    if along is not None and app.db.is_sqlite:  # statements are cheap in-process
        await app.db.fetch(along[0], *along[1])
    elif along is not None:
        insert, args = f"WITH along AS ({along[0]}) {insert}", [*along[1], *args]
    rows = await app.db.fetch(insert, *args)
    ids = sorted(row["id"] for row in rows)
    if app.hooks.implementers("ticket_event"):
        await app.jobs.enqueue_many(
            "ticket_event", [({"event_id": i}, f"ticket_event:{i}") for i in ids]
        )
    if automate:  # rules see the events from the outbox, after commit (one job per write)
        await app.automation.enqueue_events(ids, [str(row[1]) for row in rows_args])
    return ids

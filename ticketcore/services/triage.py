"""Triage of a new ticket: classification (pure) then enrichment (may do I/O)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Ticket
from ticketcore.services.history import EventDraft

if TYPE_CHECKING:
    from ticketcore.app import App


async def triage(app: App, ticket: Ticket) -> tuple[Ticket, list[EventDraft]]:
    """Apply ``classify_ticket`` answers in call order, then merge ``enrich_ticket`` data.

    Runs outside any transaction (enrichment may call a CRM). Returns the updated draft and
    one history event per plugin that changed something, with its reason.
    """
    events: list[EventDraft] = []
    current = ticket
    for plugin, classify in app.hooks.callers("classify_ticket"):
        answer = classify(ticket=current, context={})
        if answer is None:
            continue
        changes: dict[str, tuple[Any, Any]] = {}
        updates: dict[str, Any] = {}
        if answer.category and answer.category != current.category:
            changes["category"] = (current.category, answer.category)
            updates["category"] = answer.category
        if answer.priority and answer.priority != current.priority:
            changes["priority"] = (current.priority.value, answer.priority.value)
            updates["priority"] = answer.priority
        new_tags = [t for t in answer.tags if t not in current.tags]
        if new_tags:
            changes["tags"] = (current.tags, [*current.tags, *new_tags])
            updates["tags"] = [*current.tags, *new_tags]
        if changes:
            current = msgspec.structs.replace(current, **updates)
            events.append(
                EventDraft(
                    kind="classified",
                    changes=changes,
                    data={"plugin": plugin, "reason": answer.reason},
                )
            )
    enrichers = app.hooks.implementers("enrich_ticket")
    outcomes = await app.hooks.broadcast("enrich_ticket", ticket=current) if enrichers else []
    for outcome in outcomes:
        if not outcome.ok:
            events.append(
                EventDraft(
                    kind="enrichment_failed",
                    data={"plugin": outcome.plugin, "error": outcome.error},
                )
            )
            continue
        if not outcome.result:
            continue
        data = dict(outcome.result)
        changes = {}
        priority = data.pop("priority", None)
        reason = data.pop("reason", "")
        if priority is not None and Priority(priority).rank > current.priority.rank:
            changes["priority"] = (current.priority.value, Priority(priority).value)
            current = msgspec.structs.replace(current, priority=Priority(priority))
        if data:
            merged = {**current.custom_fields, **data}
            changes["custom_fields"] = (current.custom_fields, merged)
            current = msgspec.structs.replace(current, custom_fields=merged)
        if changes:
            events.append(
                EventDraft(
                    kind="enriched",
                    changes=changes,
                    data={"plugin": outcome.plugin, "reason": reason},
                )
            )
    return current, events

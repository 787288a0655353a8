"""What the CRM enrichment plugins share: raising a ticket's priority to the highest wanted."""

from __future__ import annotations

from typing import Any

from ticketcore import Priority, Ticket


def raise_priority(
    ticket: Ticket, wanted: list[Priority], reason: str, result: dict[str, Any]
) -> dict[str, Any]:
    """Put the highest of ``wanted`` into ``result["priority"]`` when it is above the
    ticket's (never lower it), and the reason, extended with the change, into
    ``result["reason"]``; return ``result``."""
    target = max(wanted, key=lambda p: p.rank, default=None)
    if target is not None and target.rank > ticket.priority.rank:
        result["priority"] = target.value
        reason += f"; priority raised from {ticket.priority.value} to {target.value}"
    result["reason"] = reason
    return result

"""What the automation tests share: rules from plain data, a customer's ticket, its
history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ticketcore.app import App
from ticketcore.domain.automation import RuleInput
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal, Ticket, TicketEvent

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


def rule(**fields: Any) -> RuleInput:
    """A rule from plain data, as the API would decode it."""
    return msgspec.convert(fields, RuleInput)


async def new_ticket(app: App, subject: str = "Help", **fields: Any) -> Ticket:
    """A ticket from carol@customer.test, created by the system."""
    return await app.tickets.create(
        SYSTEM,
        NewTicket(subject=subject, requester=RequesterInput(email="carol@customer.test"), **fields),
    )


async def history(app: App, ticket_id: int) -> list[TicketEvent]:
    """The ticket's events, oldest first."""
    return await app.tickets.events(SYSTEM, ticket_id)


def kinds(events: list[TicketEvent]) -> list[str]:
    """The kinds of these events, in order."""
    return [e.kind for e in events]

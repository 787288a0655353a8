"""TicketService used directly (as plugins and workers do), on both engines: transactions
of a caller and concurrent creations never mix, and a created ticket is committed by the
time ``create`` returns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


class Boom(Exception):
    """Raised to roll a caller's transaction back."""


def new_ticket(subject: str) -> NewTicket:
    """A minimal ticket command."""
    return NewTicket(subject=subject, requester=RequesterInput(email="svc@example.org"))


async def test_another_callers_rollback_never_takes_my_ticket_with_it(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    """A caller creates a ticket inside its own transaction and rolls back, while others
    create tickets at the same moment: theirs must survive (create returned them)."""
    app = await helpdesk_factory()
    observer = await helpdesk_factory()  # separate connections

    async def rolled_back() -> None:
        """Create a ticket in a transaction that then rolls back."""
        with pytest.raises(Boom):
            async with app.db.transaction():
                await app.tickets.create(SYSTEM, new_ticket("Rolled back"))
                await asyncio.sleep(0.05)  # the others finish meanwhile
                raise Boom

    async def independent(i: int) -> int:
        """Create a ticket on its own and check it is committed once returned."""
        ticket = await app.tickets.create(SYSTEM, new_ticket(f"Independent {i}"))
        # Returned means committed: visible from other connections at once.
        assert (
            await observer.db.fetchval("SELECT subject FROM ticket WHERE id = {}", ticket.id)
            == f"Independent {i}"
        )
        return ticket.id

    for _ in range(3):
        results = await asyncio.gather(rolled_back(), *(independent(i) for i in range(4)))
        ids = [i for i in results if i is not None]
        assert len(ids) == 4
    subjects = [
        row["subject"] for row in await observer.db.fetch("SELECT subject FROM ticket ORDER BY id")
    ]
    assert "Rolled back" not in subjects
    assert sorted(subjects) == sorted(f"Independent {i}" for i in range(4) for _ in range(3))


async def test_create_inside_a_callers_transaction_commits_with_it(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory()
    observer = await helpdesk_factory()
    async with app.db.transaction():
        ticket = await app.tickets.create(SYSTEM, new_ticket("Mine"))
        assert (await app.tickets.snapshot(ticket.id)).subject == "Mine"
        assert await observer.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 0
    assert (await observer.tickets.snapshot(ticket.id)).subject == "Mine"


async def test_concurrent_creations_return_their_own_tickets(helpdesk: App) -> None:
    tickets = await asyncio.gather(
        *(helpdesk.tickets.create(SYSTEM, new_ticket(f"T{i}")) for i in range(30))
    )
    assert [t.subject for t in tickets] == [f"T{i}" for i in range(30)]
    assert len({t.id for t in tickets}) == 30
    for ticket in tickets:
        stored = await helpdesk.tickets.snapshot(ticket.id)
        assert (stored.subject, stored.key, stored.version) == (ticket.subject, ticket.key, 1)
    with pytest.raises(NotFound):
        await helpdesk.tickets.snapshot(max(t.id for t in tickets) + 1)


async def test_a_cancelled_creator_never_strands_the_others(helpdesk: App) -> None:
    """Cancel one of several concurrent creations at various moments (as a timeout or a
    vanished client would): the others still complete."""
    for moment in range(16):
        tasks = [
            asyncio.create_task(helpdesk.tickets.create(SYSTEM, new_ticket(f"m{moment} #{i}")))
            for i in range(5)
        ]
        for _ in range(moment):
            await asyncio.sleep(0)
        tasks[0].cancel()
        done, pending = await asyncio.wait(tasks[1:], timeout=10)
        assert not pending, f"creations stranded when cancelled at moment {moment}"
        for task in done:
            assert (await task).id > 0
        await asyncio.gather(tasks[0], return_exceptions=True)
    rows = await helpdesk.db.fetch("SELECT subject FROM ticket")
    subjects = {row["subject"] for row in rows}
    assert all(f"m{m} #{i}" in subjects for m in range(16) for i in range(1, 5))

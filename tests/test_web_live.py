"""Live updates across server processes: the feed reads ``ticket_event`` from the database,
so a change made by another process (here: another helpdesk on the same database) reaches
this one's pages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from web_ui_helpers import make_people

from ticketcore.app import App
from ticketcore.domain.commands import NewEntry, NewTicket
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.web.ui.live import visible
from ticketcore.web.ui.livefeed import EventFeed, LiveEvent

pytestmark = pytest.mark.db
Factory = Callable[..., Awaitable[App]]


async def test_a_change_in_another_process_reaches_subscribers(helpdesk_factory: Factory) -> None:
    here = await helpdesk_factory()
    elsewhere = await helpdesk_factory()  # another server process on the same database
    people = await make_people(elsewhere)
    feed = EventFeed(here.db, interval=0.05)
    try:
        async with feed.subscribe() as queue:
            ticket = await elsewhere.tickets.create(
                people.customer, NewTicket(subject="Hi", body="x")
            )
            event = await asyncio.wait_for(queue.get(), 5)
            assert (event.ticket_id, event.kind) == (ticket.id, "created")
            assert event.requester_id == people.customer.contact_id
            await elsewhere.tickets.add_entry(
                people.agent, ticket.id, NewEntry(body="note"), internal=True
            )
            event = await asyncio.wait_for(queue.get(), 5)
            assert (event.ticket_id, event.kind) == (ticket.id, "note_added")
            assert queue.empty()
    finally:
        await feed.close()
    assert feed._task is None


async def test_the_feed_starts_after_what_already_happened(helpdesk_factory: Factory) -> None:
    app = await helpdesk_factory()
    people = await make_people(app)
    await app.tickets.create(people.customer, NewTicket(subject="old", body="x"))
    feed = EventFeed(app.db)
    assert await feed.poll_once() == []  # the first poll only finds where "now" is
    new = await app.tickets.create(people.customer, NewTicket(subject="new", body="x"))
    assert [(e.ticket_id, e.kind) for e in await feed.poll_once()] == [(new.id, "created")]
    assert await feed.poll_once() == []


async def test_a_late_commit_of_a_lower_id_is_not_lost(
    helpdesk_factory: Factory, db_engine: str
) -> None:
    if db_engine == "sqlite":
        pytest.skip("SQLite has one writer: events commit in id order")
    app = await helpdesk_factory()
    people = await make_people(app)
    a = await app.tickets.create(people.customer, NewTicket(subject="a", body="x"))
    b = await app.tickets.create(people.customer, NewTicket(subject="b", body="x"))
    feed = EventFeed(app.db)
    await feed.poll_once()
    import asyncpg

    slow = await asyncpg.connect(
        app.settings.database.url.split("?")[0],
        server_settings={"search_path": app.settings.database.url.split("search_path=")[1]},
    )
    try:
        await slow.execute("BEGIN")
        await slow.execute(
            "INSERT INTO ticket_event (ticket, kind, actor_kind, actor_name, changes, data, "
            "created_at) VALUES ($1, 'late', 'system', '', '{}', '{}', now())",
            a.id,
        )
        await app.tickets.add_entry(people.agent, b.id, NewEntry(body="n"), internal=True)
        seen = await feed.poll_once()
        assert [e.kind for e in seen] == ["note_added"]
        await slow.execute("COMMIT")
    finally:
        await slow.close()
    late = await feed.poll_once()
    assert [(e.ticket_id, e.kind) for e in late] == [(a.id, "late")]
    assert await feed.poll_once() == []


def test_customers_learn_only_of_public_events_on_their_tickets() -> None:
    staff = Principal(id=1, name="A", email="a@x", role=Role.AGENT)
    carol = Principal(id=2, name="C", email="c@x", role=Role.CUSTOMER, contact_id=10)
    for kind in ("created", "message_added", "status_changed"):
        assert visible(carol, LiveEvent(id=1, ticket_id=5, kind=kind, requester_id=10))
        assert not visible(carol, LiveEvent(id=1, ticket_id=6, kind=kind, requester_id=11))
    for kind in ("note_added", "updated", "mentioned", "system_note_added"):
        assert not visible(carol, LiveEvent(id=1, ticket_id=5, kind=kind, requester_id=10))
        assert visible(staff, LiveEvent(id=1, ticket_id=5, kind=kind, requester_id=10))

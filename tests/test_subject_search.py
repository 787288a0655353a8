"""The ticket list's text filter (``q``) through the subject search index, on both engines:
substrings anywhere in a word, case and non-ASCII letters, quotes and wildcards taken
literally, short needles, edits re-indexed, and the index really used."""

from __future__ import annotations

from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput, TicketPatch
from ticketcore.domain.models import Principal
from ticketcore.services.tickets import TicketFilters
from ticketcore.testing import Seed


async def open_ticket(app: App, seed: Seed, subject: str) -> int:
    ticket = await app.tickets.create(
        seed.agent,
        NewTicket(subject=subject, body="x", requester=RequesterInput(email="c@customer.test")),
    )
    return ticket.id


async def found(app: App, who: Principal, q: str) -> list[int]:
    page = await app.tickets.list(who, TicketFilters(q=q))
    return [t.id for t in page.items]


async def test_substrings_case_quotes_and_short_needles(helpdesk: App, seed: Seed) -> None:
    outage = await open_ticket(helpdesk, seed, "Mailserver OUTAGE in Zürich")
    card = await open_ticket(helpdesk, seed, 'Carte bancaire refusée: "échoue" à 50%')
    other = await open_ticket(helpdesk, seed, "Printer jam")
    agent = seed.agent
    assert await found(helpdesk, agent, "serv") == [outage]  # inside a word
    assert await found(helpdesk, agent, "outage") == [outage]  # case
    assert await found(helpdesk, agent, "ZÜRICH") == [outage]  # non-ASCII case
    assert await found(helpdesk, agent, '"échoue"') == [card]  # quotes are literal
    assert await found(helpdesk, agent, "50%") == [card]  # so are wildcards
    assert await found(helpdesk, agent, "%") == [card]
    assert await found(helpdesk, agent, "ja") == [other]  # under three characters: a scan
    assert await found(helpdesk, agent, "nothing like it") == []


async def test_a_changed_subject_is_found_by_its_new_words(helpdesk: App, seed: Seed) -> None:
    ticket_id = await open_ticket(helpdesk, seed, "VPN drops")
    await helpdesk.tickets.update(
        seed.agent, ticket_id, TicketPatch(version=1, subject="Wi-Fi drops")
    )
    assert await found(helpdesk, seed.agent, "vpn") == []
    assert await found(helpdesk, seed.agent, "wi-fi") == [ticket_id]
    # Customers search only their own tickets, index or not.
    assert await found(helpdesk, seed.customer, "drops") == []


async def test_the_text_filter_uses_the_index(helpdesk: App) -> None:
    db = helpdesk.db
    if db.is_sqlite:
        plan = await db.fetch(
            "EXPLAIN QUERY PLAN SELECT id FROM ticket WHERE id IN (SELECT rowid FROM "
            "ticket_subject_fts WHERE ticket_subject_fts MATCH '\"outage\"')"
        )
        assert any("ticket_subject_fts VIRTUAL TABLE INDEX" in str(r) for r in plan), plan
    else:
        rows = await db.fetch(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_ticket_subject_trgm'"
        )
        assert "gin_trgm_ops" in rows[0]["indexdef"]

"""Agents' saved filters: saved server-side per agent, listed in the queue's navigation,
showing what they find; another agent's filters stay private (both engines)."""

from __future__ import annotations

import re

import pytest
from web_ui_helpers import Site, site_fixture  # noqa: F401

from ticketcore.domain.commands import NewTicket, TicketFilters, TicketPatch
from ticketcore.domain.enums import Priority
from ticketcore.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.db


def ticket_ids(html: str) -> list[int]:
    """The ticket rows of a queue table, in order."""
    return [int(i) for i in re.findall(r'<tr data-ticket-id="(\d+)"', html)]


async def test_save_use_and_delete_a_filter(site: Site) -> None:
    app, p = site.app, site.people
    urgent_printer = await app.tickets.create(
        p.customer, NewTicket(subject="Printer on fire", body="x")
    )
    await app.tickets.update(
        p.admin, urgent_printer.id, TicketPatch(priority=Priority.CRITICAL), version=1
    )
    await app.tickets.create(p.customer, NewTicket(subject="Printer low on toner", body="x"))
    urgent_other = await app.tickets.create(p.other, NewTicket(subject="VPN down", body="x"))
    await app.tickets.update(
        p.admin,
        urgent_other.id,
        TicketPatch(priority=Priority.CRITICAL, assignee_id=p.agent2.id),
        version=1,
    )

    agent, csrf = await site.signed_in(p.agent.email)
    assert "Manage saved filters" in (await agent.get("/agent/queue/mine")).text
    form = await agent.get("/agent/filters")
    assert form.status_code == 200 and 'for="filter-name"' in form.text

    saved = await agent.post(
        "/agent/filters",
        data={
            "_csrf": csrf,
            "name": "Urgent unassigned",
            "priority": "critical",
            "assignee": "none",
        },
    )
    assert saved.status_code == 303
    url = saved.headers["location"].split("?")[0]
    page = await agent.get(url)
    assert page.status_code == 200
    assert ticket_ids(page.text) == [urgent_printer.id]
    assert "<h1" in page.text and "Urgent unassigned" in page.text
    fragment = await agent.get(url + "?fragment=1")
    assert "<html" not in fragment.text and ticket_ids(fragment.text) == [urgent_printer.id]
    # Listed in the queue navigation.
    queue = await agent.get("/agent/queue/mine")
    assert f'href="{url}"' in queue.text

    # The same name again replaces it: now "subject contains printer", any priority.
    again = await agent.post(
        "/agent/filters", data={"_csrf": csrf, "name": "Urgent unassigned", "q": "Printer"}
    )
    assert again.headers["location"].split("?")[0] == url
    assert len(ticket_ids((await agent.get(url)).text)) == 2
    assert len(await app.saved_filters.list(p.agent)) == 1

    # A bad filter is refused in place, the form keeping what was typed.
    bad = await agent.post("/agent/filters", data={"_csrf": csrf, "name": "", "q": "kept text"})
    assert bad.status_code == 422 and 'value="kept text"' in bad.text

    # Sam cannot see or delete Alex's filter.
    sam, sam_csrf = await site.signed_in(p.agent2.email)
    assert (await sam.get(url)).status_code == 404
    filter_id = int(url.rsplit("/", 1)[1])
    stolen = await sam.post(f"/agent/filters/{filter_id}/delete", data={"_csrf": sam_csrf})
    assert stolen.status_code == 404
    assert f'href="{url}"' not in (await sam.get("/agent/queue/mine")).text
    customer, _ = await site.signed_in(p.customer.email)
    assert (await customer.get("/agent/filters")).status_code == 403

    deleted = await agent.post(f"/agent/filters/{filter_id}/delete", data={"_csrf": csrf})
    assert deleted.status_code == 303
    assert (await agent.get(url)).status_code == 404


async def test_service_rules(site: Site) -> None:
    app, p = site.app, site.people
    with pytest.raises(ValidationFailed):
        await app.saved_filters.save(p.agent, "x", TicketFilters(status="sleeping"))
    with pytest.raises(ValidationFailed):
        await app.saved_filters.save(p.agent, " ", TicketFilters())
    made = await app.saved_filters.save(p.agent, "  Mine   open ", TicketFilters(status="open"))
    assert made.name == "Mine open" and made.filters.status == "open"
    with pytest.raises(NotFound):
        await app.saved_filters.get(p.agent2, made.id)

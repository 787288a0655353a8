"""The agent workspace, the customer portal and the admin pages, through their forms."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from web_ui_helpers import Site, site_fixture  # noqa: F401

from ticketcore import hookimpl
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import (
    NewEntry,
    NewMacro,
    NewTicket,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.enums import EntryKind, Priority, Status
from ticketcore.domain.models import KbHit, Ticket
from ticketcore.web.ui import queues

HelpdeskFactory = Callable[..., Awaitable[App]]

pytestmark = pytest.mark.db


def ticket_ids(html: str) -> list[int]:
    """The ticket rows of a queue table, in order."""
    return [int(i) for i in re.findall(r'<tr data-ticket-id="(\d+)"', html)]


def count_of(html: str, view: str) -> str:
    """The count shown next to a view in the navigation."""
    found = re.search(rf'data-count="{view}"[^>]*>([^<]+)<', html)
    assert found, view
    return found.group(1)


async def test_queue_views_and_their_counts(site: Site) -> None:
    app, p = site.app, site.people

    async def ticket(subject: str, **patch: object) -> int:
        made = await app.tickets.create(p.customer, NewTicket(subject=subject, body="x"))
        if patch:
            await app.tickets.update(p.admin, made.id, TicketPatch(**patch), version=1)  # type: ignore[arg-type]
        return made.id

    mine_new = await ticket("mine new", assignee_id=p.agent.id)
    mine_open = await ticket("mine open", assignee_id=p.agent.id)
    await app.tickets.transition(p.agent, mine_open, TransitionRequest(transition="open"))
    mine_waiting = await ticket("mine waiting", assignee_id=p.agent.id)
    await app.tickets.transition(
        p.agent, mine_waiting, TransitionRequest(transition="wait_for_customer")
    )
    unassigned = await ticket("nobody's")
    team = await ticket("team", team_id=p.team_id, assignee_id=p.agent2.id)
    done = await ticket("done", assignee_id=p.agent.id)
    await app.tickets.transition(p.agent, done, TransitionRequest(transition="resolve"))

    agent, _ = await site.signed_in(p.agent.email)
    expected = {
        "mine": [mine_open, mine_new],
        "unassigned": [unassigned],
        "team": [team],
        "pending": [mine_waiting],
    }
    for view, ids in expected.items():
        page = await agent.get(f"/agent/queue/{view}")
        assert page.status_code == 200
        assert ticket_ids(page.text) == ids, view
        for other, other_ids in expected.items():
            assert count_of(page.text, other) == str(len(other_ids))
    fragment = await agent.get("/agent/queue/mine?fragment=1")
    assert "<html" not in fragment.text and ticket_ids(fragment.text) == [mine_open, mine_new]
    assert (await agent.get("/agent/queue/nonsense")).status_code == 422


async def test_queue_pages_and_capped_counts(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    app, p = site.app, site.people
    ids = [
        (await app.tickets.create(p.customer, NewTicket(subject=f"t{i}", body="x"))).id
        for i in range(5)
    ]
    ranges = queues.scopes("unassigned", p.agent, [])
    first, before = await queues.view_page(app, ranges, limit=2)
    assert [t.id for t in first] == ids[:-3:-1] and before == ids[-2]
    second, before = await queues.view_page(app, ranges, limit=2, before=before)
    assert [t.id for t in second] == [ids[2], ids[1]]
    third, before = await queues.view_page(app, ranges, limit=2, before=before)
    assert [t.id for t in third] == [ids[0]] and before is None
    monkeypatch.setattr(queues, "COUNT_CAP", 3)
    assert await queues.count(app, ranges) == 4
    assert queues.count_label(await queues.count(app, ranges)) == "3+"
    agent, _ = await site.signed_in(p.agent.email)
    page = await agent.get("/agent/queue/unassigned")
    assert count_of(page.text, "unassigned") == "3+"
    older = re.search(r'href="/agent/queue/unassigned\?before=(\d+)"', page.text)
    assert older is None  # 5 tickets fit on one page of 25


async def test_search_by_subject_and_by_number(site: Site) -> None:
    app, p = site.app, site.people
    printer = await app.tickets.create(p.customer, NewTicket(subject="Printer jam", body="x"))
    await app.tickets.create(p.customer, NewTicket(subject="Password reset", body="x"))
    agent, _ = await site.signed_in(p.agent.email)
    found = await agent.get("/agent/search", params={"q": "printer"})
    assert ticket_ids(found.text) == [printer.id]
    jump = await agent.get("/agent/search", params={"q": f"#{printer.id}"})
    assert jump.status_code == 303 and jump.headers["location"] == f"/agent/tickets/{printer.id}"


async def test_agent_ticket_actions(site: Site) -> None:
    app, p = site.app, site.people
    first = await app.tickets.create(p.customer, NewTicket(subject="Earlier one", body="x"))
    ticket = await app.tickets.create(p.customer, NewTicket(subject="Broken", body="It broke"))
    await app.macros.create(
        p.admin,
        NewMacro(name="Thanks", body="Thanks {{ requester.name }}!", set_priority=Priority.HIGH),
    )
    agent, csrf = await site.signed_in(p.agent.email)
    url = f"/agent/tickets/{ticket.id}"
    page = await agent.get(url)
    assert f'href="/agent/tickets/{first.id}"' in page.text  # the customer's other tickets
    assert "Thanks" in page.text and "@sam" in page.text  # canned responses, mention help

    reply = await agent.post(
        f"{url}/entries",
        data={"_csrf": csrf, "kind": "reply", "body": "Try turning it off and on"},
        files={"files": ("steps.txt", b"1. off\n2. on", "text/plain")},
    )
    assert reply.headers["location"] == f"{url}?done=reply_sent"
    note = await agent.post(
        f"{url}/entries", data={"_csrf": csrf, "kind": "note", "body": "@sam seen this?"}
    )
    assert note.headers["location"] == f"{url}?done=note_added"
    macro = await agent.post(f"{url}/macro", data={"_csrf": csrf, "macro_id": "1"})
    assert macro.headers["location"] == f"{url}?done=macro_applied"
    entries = await app.tickets.entries(p.agent, ticket.id)
    assert [e.kind for e in entries] == [
        EntryKind.MESSAGE_IN,
        EntryKind.MESSAGE_OUT,
        EntryKind.NOTE,
        EntryKind.MESSAGE_OUT,
    ]
    assert entries[1].attachments[0].filename == "steps.txt"
    assert entries[3].body_text == "Thanks Carol Customer!"

    current = await app.tickets.snapshot(ticket.id)
    saved = await agent.post(
        f"{url}/fields",
        data={
            "_csrf": csrf,
            "version": str(current.version),
            "assignee_id": str(p.agent2.id),
            "team_id": str(p.team_id),
            "priority": "critical",
            "category": "hardware",
            "tags": "printer, Urgent",
        },
    )
    assert saved.headers["location"] == f"{url}?done=saved"
    changed = await app.tickets.snapshot(ticket.id)
    assert (changed.assignee_id, changed.team_id, changed.priority) == (
        p.agent2.id,
        p.team_id,
        Priority.CRITICAL,
    )
    assert (changed.category, changed.tags) == ("hardware", ["printer", "urgent"])

    # A stale version (another agent changed the ticket meanwhile) changes nothing.
    stale = await agent.post(
        f"{url}/fields",
        data={"_csrf": csrf, "version": str(current.version), "priority": "low", "tags": ""},
    )
    assert "error=" in stale.headers["location"]
    shown = await agent.get(stale.headers["location"])
    assert "changed since version" in shown.text and 'role="alert"' in shown.text
    assert (await app.tickets.snapshot(ticket.id)).priority is Priority.CRITICAL

    resolved = await agent.post(
        f"{url}/transition",
        data={"_csrf": csrf, "transition": "resolve", "version": str(changed.version)},
    )
    assert resolved.headers["location"] == f"{url}?done=status_changed"
    assert (await app.tickets.snapshot(ticket.id)).status is Status.RESOLVED
    page = await agent.get(url)
    assert 'class="entry entry-note"' in page.text
    assert '<mark class="mention">@sam</mark>' in page.text
    assert "Status changed." not in page.text
    assert "Status changed." in (await agent.get(resolved.headers["location"])).text


async def test_portal_open_reply_confirm_and_reopen(site: Site) -> None:
    app, p = site.app, site.people
    customer, csrf = await site.signed_in(p.customer.email)
    empty = await customer.get("/portal")
    assert "You have no tickets yet" in empty.text

    refused = await customer.post(
        "/portal/new", data={"_csrf": csrf, "subject": "", "body": "kept text"}
    )
    assert refused.status_code == 422 and "kept text" in refused.text

    opened = await customer.post(
        "/portal/new",
        data={
            "_csrf": csrf,
            "subject": "Cannot log in",
            "body": "Since today",
            "category": "account",
        },
        files={"files": ("error.png", b"\x89PNG fake", "image/png")},
    )
    assert opened.status_code == 303
    ticket_id = int(opened.headers["location"].split("/")[-1].split("?")[0])
    ticket = await app.tickets.snapshot(ticket_id)
    assert (ticket.subject, ticket.category, ticket.channel) == (
        "Cannot log in",
        "account",
        "portal",
    )
    assert ticket.requester.id == p.customer.contact_id
    [first] = await app.tickets.entries(p.customer, ticket_id)
    assert first.attachments[0].filename == "error.png"

    listing = await customer.get("/portal")
    assert "Cannot log in" in listing.text and "New" in listing.text

    reply = await customer.post(
        f"/portal/tickets/{ticket_id}/reply", data={"_csrf": csrf, "body": "Still broken"}
    )
    assert reply.headers["location"].endswith("done=reply_sent")
    await app.tickets.transition(p.agent, ticket_id, TransitionRequest(transition="resolve"))
    page = await customer.get(f"/portal/tickets/{ticket_id}")
    assert "Yes, it is solved" in page.text
    confirm = await customer.post(
        f"/portal/tickets/{ticket_id}/status", data={"_csrf": csrf, "action": "confirm"}
    )
    assert confirm.headers["location"].endswith("done=confirmed")
    assert (await app.tickets.snapshot(ticket_id)).status is Status.CLOSED
    closed = await customer.get(f"/portal/tickets/{ticket_id}")
    assert "Your reply" not in closed.text and "No, reopen it" in closed.text
    reopen = await customer.post(
        f"/portal/tickets/{ticket_id}/status", data={"_csrf": csrf, "action": "reopen"}
    )
    assert reopen.headers["location"].endswith("done=reopened")
    assert (await app.tickets.snapshot(ticket_id)).status is Status.OPEN
    # Only the customer's own transitions are possible.
    forbidden = await customer.post(
        f"/portal/tickets/{ticket_id}/status", data={"_csrf": csrf, "action": "hold"}
    )
    assert "error=" in forbidden.headers["location"]
    assert (await app.tickets.snapshot(ticket_id)).status is Status.OPEN


async def test_admin_plugins_page(site: Site) -> None:
    admin, _ = await site.signed_in(site.people.admin.email)
    page = await admin.get("/admin/plugins")
    row = re.search(r'<tr data-plugin="routing.round_robin">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert "ticketcore 0.1.0" in row.group(1) and "Not enabled" in row.group(1)


async def test_admin_plugins_page_shows_enabled_plugins(
    site: Site, helpdesk_factory: HelpdeskFactory
) -> None:
    from ticketcore.web import create_app

    # A second helpdesk on the same database (its people exist), with a plugin enabled.
    app = await helpdesk_factory(
        web={"secure_cookies": False},
        plugins={"routing": ["round_robin"]},
        plugin={"routing": {"round_robin": {"default_team": "support"}}},
    )
    other = Site(app=app, people=site.people, web=create_app(app, run_worker=False), clients=[])
    try:
        admin, _ = await other.signed_in("ada@example.org")
        page = await admin.get("/admin/plugins")
        row = re.search(r'<tr data-plugin="routing.round_robin">(.*?)</tr>', page.text, re.S)
        assert row and "Enabled" in row.group(1)
        assert "route_ticket" in row.group(1) and "default_team" in row.group(1)
    finally:
        for client in other.clients:
            await client.aclose()


async def test_admin_teams_agents_and_tokens(site: Site) -> None:
    app, p = site.app, site.people
    await app.directory.set_skills(p.agent.id, {"postgres": 4})
    await app.directory.set_capacity(p.agent.id, 7)
    admin, csrf = await site.signed_in(p.admin.email)
    teams = await admin.get("/admin/teams")
    members = re.search(r'<tr data-team="support">(.*?)</tr>', teams.text, re.S)
    assert members and "Alex Agent" in members.group(1) and "Sam Second" in members.group(1)
    agents = await admin.get("/admin/agents")
    row = re.search(r'<tr data-agent="alex@example.org">(.*?)</tr>', agents.text, re.S)
    assert row and "postgres (4)" in row.group(1) and "<td>7</td>" in row.group(1)

    made = await admin.post(
        "/admin/tokens", data={"_csrf": csrf, "user_id": str(p.agent.id), "name": "ci bot"}
    )
    assert made.headers["location"] == "/admin/tokens?created=1"
    shown = await admin.get("/admin/tokens?created=1")
    token = re.search(r'<code id="new-token">([^<]+)</code>', shown.text)
    assert token, shown.text
    again = await admin.get("/admin/tokens?created=1")
    assert 'id="new-token"' not in again.text  # shown once
    api = {"Authorization": f"Bearer {token.group(1)}"}
    revoke_id = re.search(r'action="/admin/tokens/(\d+)/revoke"', again.text)
    assert revoke_id
    revoked = await admin.post(f"/admin/tokens/{revoke_id.group(1)}/revoke", data={"_csrf": csrf})
    assert revoked.headers["location"].endswith("done=token_revoked")
    assert (await admin.get("/api/v1/tickets", headers=api)).status_code == 401


class Knowledge:
    """A knowledge-base source with one good and one hostile link."""

    @hookimpl
    def kb_suggest(self, ticket: Ticket, limit: int) -> list[KbHit]:
        return [
            KbHit(source="kb", title=f"Fixing {ticket.subject}", url="/kb/1", score=2.0),
            KbHit(source="kb", title="Evil", url="javascript:alert(1)", score=1.0),
        ]


async def test_ticket_page_shows_knowledge_suggestions(helpdesk_factory: HelpdeskFactory) -> None:
    from web_ui_helpers import make_people

    from ticketcore.web import create_app

    app = await helpdesk_factory(
        web={"secure_cookies": False}, extra_plugins=[("kb_test", Knowledge())]
    )
    people = await make_people(app)
    ticket = await app.tickets.create(people.customer, NewTicket(subject="VPN", body="x"))
    site = Site(app=app, people=people, web=create_app(app, run_worker=False), clients=[])
    try:
        agent, _ = await site.signed_in(people.agent.email)
        page = await agent.get(f"/agent/tickets/{ticket.id}")
        assert "Suggested articles" in page.text
        assert (
            '<a href="/kb/1" rel="noopener noreferrer" target="_blank">Fixing VPN</a>' in page.text
        )
        assert "javascript:" not in page.text and "Evil" not in page.text
    finally:
        for client in site.clients:
            await client.aclose()


async def test_link_and_merge_from_the_ticket_page(site: Site) -> None:
    app, p = site.app, site.people
    first = await app.tickets.create(p.customer, NewTicket(subject="Original", body="x"))
    dup = await app.tickets.create(p.customer, NewTicket(subject="Duplicate", body="x"))
    agent, csrf = await site.signed_in(p.agent.email)
    url = f"/agent/tickets/{dup.id}"
    related = await agent.post(
        f"{url}/link", data={"_csrf": csrf, "kind": "related", "other": f"#{first.id}"}
    )
    assert related.headers["location"] == f"{url}?done=linked"
    merged = await agent.post(
        f"{url}/link", data={"_csrf": csrf, "kind": "merged_into", "other": str(first.id)}
    )
    assert merged.headers["location"] == f"{url}?done=linked"
    ticket = await app.tickets.snapshot(dup.id)
    assert ticket.status is Status.CLOSED
    assert [(link.kind.value, link.ticket_id) for link in ticket.links] == [
        ("related", first.id),
        ("merged_into", first.id),
    ]
    page = await agent.get(url)
    assert f'merged into <a href="/agent/tickets/{first.id}">#{first.id}</a>' in page.text
    for bad in ({"kind": "related", "other": "abc"}, {"kind": "twin", "other": "1"}):
        refused = await agent.post(f"{url}/link", data={"_csrf": csrf, **bad})
        assert "error=" in refused.headers["location"]
    itself = await agent.post(
        f"{url}/link", data={"_csrf": csrf, "kind": "related", "other": str(dup.id)}
    )
    assert "error=" in itself.headers["location"]


SLA_RULES = [
    {"name": "critical", "match": {"priority": ["critical"]}, "first_response": "30m"},
    {"name": "standard", "first_response": "1d"},
]


async def test_sla_at_risk_view(helpdesk_factory: HelpdeskFactory, clock: FrozenClock) -> None:
    from web_ui_helpers import make_people

    from ticketcore.web import create_app

    app = await helpdesk_factory(
        web={"secure_cookies": False},
        plugins={"sla": ["policy"]},
        plugin={"sla": {"policy": {"rules": SLA_RULES}}},
    )
    people = await make_people(app)

    async def ticket(subject: str, priority: Priority) -> int:
        cmd = NewTicket(subject=subject, body="x", priority=priority)
        return (await app.tickets.create(people.customer, cmd)).id

    calm = await ticket("Calm", Priority.NORMAL)  # due in a day: not at risk
    breached = await ticket("Breached", Priority.CRITICAL)  # due in 30 minutes ...
    clock.advance(minutes=40)  # ... so now 10 minutes late
    soon = await ticket("Due soon", Priority.CRITICAL)  # due in 30 minutes
    site = Site(app=app, people=people, web=create_app(app, run_worker=False), clients=[])
    try:
        agent, _ = await site.signed_in(people.agent.email)
        page = await agent.get("/agent/queue/at_risk")
        assert ticket_ids(page.text) == [breached, soon]  # most urgent first
        assert calm not in ticket_ids(page.text)
        assert count_of(page.text, "at_risk") == "2"
        assert "SLA at risk" in page.text and 'class="due"' in page.text
    finally:
        for client in site.clients:
            await client.aclose()


async def test_a_reply_crossing_another_is_held_with_its_draft(site: Site) -> None:
    app, p = site.app, site.people
    ticket = await app.tickets.create(p.customer, NewTicket(subject="Printer", body="Jammed"))
    agent, csrf = await site.signed_in(p.agent.email)
    url = f"/agent/tickets/{ticket.id}"
    page = await agent.get(url)
    seen = re.search(r'name="seen" value="(\d+)"', page.text)
    assert seen
    # Sam answers while Alex is typing.
    await app.tickets.add_entry(p.agent2, ticket.id, NewEntry(body="Fixed it"), internal=False)
    draft = "Please restart the printer <b>now</b>"
    held = await agent.post(
        f"{url}/entries",
        data={"_csrf": csrf, "kind": "reply", "body": draft, "seen": seen.group(1)},
    )
    assert held.status_code == 409
    assert "Sam Second wrote on this ticket after you opened it" in held.text
    assert "Please restart the printer &lt;b&gt;now&lt;/b&gt;</textarea>" in held.text
    assert "Fixed it" in held.text
    assert len(await app.tickets.entries(p.agent, ticket.id)) == 2  # nothing sent
    # Sending again from the warning page goes through.
    sent = await agent.post(
        f"{url}/entries",
        data={"_csrf": csrf, "kind": "reply", "body": draft, "seen": seen.group(1), "force": "1"},
    )
    assert sent.headers["location"] == f"{url}?done=reply_sent"
    # A note never waits, and a reply written after seeing everything goes straight out.
    latest = (await app.tickets.entries(p.agent, ticket.id))[-1].id
    for kind, seen_id in (("note", seen.group(1)), ("reply", str(latest))):
        done = await agent.post(
            f"{url}/entries", data={"_csrf": csrf, "kind": kind, "body": "ok", "seen": seen_id}
        )
        assert done.status_code == 303, kind
    assert len(await app.tickets.entries(p.agent, ticket.id)) == 5

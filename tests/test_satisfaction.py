"""Satisfaction ratings (CSAT): the service's rules, the REST API, the portal's rating form
and the rating on the agent's ticket page, on both engines."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from web_ui_helpers import Site, site_fixture  # noqa: F401

from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewTicket, TransitionRequest
from ticketcore.domain.models import Principal
from ticketcore.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from ticketcore.services.satisfaction import SatisfactionInput
from ticketcore.testing import Seed

pytestmark = pytest.mark.db


async def _resolved(app: App, customer: Principal, agent: Principal) -> int:
    """A ticket of ``customer`` that ``agent`` resolved."""
    ticket = await app.tickets.create(customer, NewTicket(subject="Printer", body="jammed"))
    await app.tickets.transition(agent, ticket.id, TransitionRequest(transition="resolve"))
    return ticket.id


async def test_rating_rules_and_history(helpdesk: App, seed: Seed, clock: FrozenClock) -> None:
    app = helpdesk
    ticket = await app.tickets.create(seed.customer, NewTicket(subject="Printer", body="jammed"))

    # Not before the ticket is resolved.
    with pytest.raises(InvalidTransition):
        await app.satisfaction.rate(seed.customer, ticket.id, SatisfactionInput(rating=5))
    assert not await app.satisfaction.can_rate(seed.customer, ticket.id)

    await app.tickets.transition(seed.agent, ticket.id, TransitionRequest(transition="resolve"))
    assert await app.satisfaction.can_rate(seed.customer, ticket.id)
    # Only the requester: another customer does not even learn the ticket exists; staff may
    # not rate; a rating is 1 to 5 and the comment has a bounded length.
    with pytest.raises(NotFound):
        await app.satisfaction.rate(seed.other_customer, ticket.id, SatisfactionInput(rating=5))
    with pytest.raises(PermissionDenied):
        await app.satisfaction.rate(seed.agent, ticket.id, SatisfactionInput(rating=5))
    for bad in (0, 6, -1):
        with pytest.raises(ValidationFailed) as failed:
            await app.satisfaction.rate(seed.customer, ticket.id, SatisfactionInput(rating=bad))
        assert failed.value.field == "rating"
    with pytest.raises(ValidationFailed):
        await app.satisfaction.rate(
            seed.customer, ticket.id, SatisfactionInput(rating=3, comment="x" * 2001)
        )
    assert await app.satisfaction.get(seed.agent, ticket.id) is None

    first = await app.satisfaction.rate(
        seed.customer, ticket.id, SatisfactionInput(rating=2, comment="  slow  ")
    )
    assert (first.rating, first.comment, first.changeable) == (2, "slow", True)

    # Closing keeps it changeable for 7 days; the same answer again records nothing.
    await app.tickets.transition(seed.customer, ticket.id, TransitionRequest(transition="close"))
    clock.advance(days=6)
    changed = await app.satisfaction.rate(
        seed.customer, ticket.id, SatisfactionInput(rating=4, comment="fixed in the end")
    )
    assert changed.rating == 4 and changed.created_at == first.created_at
    await app.satisfaction.rate(
        seed.customer, ticket.id, SatisfactionInput(rating=4, comment="fixed in the end")
    )
    events = await app.tickets.events(seed.agent, ticket.id)
    rated = [e for e in events if e.kind == "satisfaction_rated"]
    assert [e.data["rating"] for e in rated] == [2, 4]
    change = rated[1].changes["satisfaction"]
    assert (change.old, change.new) == (2, 4)
    assert rated[0].actor.id == seed.customer.id

    clock.advance(days=2)  # closed 8 days ago: final
    with pytest.raises(InvalidTransition):
        await app.satisfaction.rate(seed.customer, ticket.id, SatisfactionInput(rating=1))
    final = await app.satisfaction.get(seed.customer, ticket.id)
    assert final is not None and final.rating == 4 and not final.changeable

    # One row per ticket, whatever happened.
    rows = await app.db.fetch("SELECT COUNT(*) AS n FROM satisfaction_rating")
    assert rows[0]["n"] == 1


async def test_summary(helpdesk: App, seed: Seed, clock: FrozenClock) -> None:
    app = helpdesk
    start = clock.now()
    empty = await app.satisfaction.summary(seed.agent)
    assert (empty.count, empty.average) == (0, None)
    for score in (5, 4, 2):
        ticket_id = await _resolved(app, seed.customer, seed.agent)
        await app.satisfaction.rate(seed.customer, ticket_id, SatisfactionInput(rating=score))
        clock.advance(hours=1)
    summary = await app.satisfaction.summary(seed.admin)
    assert (summary.count, summary.average) == (3, 3.67)
    assert summary.by_rating == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1}
    first_hour = await app.satisfaction.summary(
        seed.agent, since=start, until=start + timedelta(minutes=30)
    )
    assert (first_hour.count, first_hour.average) == (1, 5.0)
    with pytest.raises(PermissionDenied):
        await app.satisfaction.summary(seed.customer)


async def test_rest_api(helpdesk: App, seed: Seed, api: httpx.AsyncClient) -> None:
    ticket_id = await _resolved(helpdesk, seed.customer, seed.agent)
    url = f"/api/v1/tickets/{ticket_id}/satisfaction"
    missing = await api.get(url, headers=seed.headers("agent"))
    assert missing.status_code == 404 and missing.json()["field"] == "satisfaction"

    bad = await api.post(url, json={"rating": 9}, headers=seed.headers("customer"))
    assert bad.status_code == 422 and bad.json()["field"] == "rating"
    unknown = await api.post(url, json={"rating": 3, "x": 1}, headers=seed.headers("customer"))
    assert unknown.status_code == 422
    staff = await api.post(url, json={"rating": 5}, headers=seed.headers("agent"))
    assert staff.status_code == 403
    other = await api.post(url, json={"rating": 5}, headers=seed.headers("other_customer"))
    assert other.status_code == 404

    made = await api.post(
        url, json={"rating": 5, "comment": "quick"}, headers=seed.headers("customer")
    )
    assert made.status_code == 200, made.text
    assert made.json()["rating"] == 5
    read = await api.get(url, headers=seed.headers("agent"))
    assert read.status_code == 200
    assert (read.json()["rating"], read.json()["comment"]) == (5, "quick")
    assert (await api.get(url, headers=seed.headers("customer"))).json()["rating"] == 5
    assert (await api.get(url, headers=seed.headers("other_customer"))).status_code == 404
    assert (await api.get(url)).status_code == 401

    summary = await api.get("/api/v1/satisfaction/summary", headers=seed.headers("agent"))
    assert summary.status_code == 200 and summary.json()["count"] == 1
    denied = await api.get("/api/v1/satisfaction/summary", headers=seed.headers("customer"))
    assert denied.status_code == 403


async def test_portal_rating_form_and_agent_page(site: Site) -> None:
    app, p = site.app, site.people
    ticket_id = await _resolved(app, p.customer, p.agent)
    customer, csrf = await site.signed_in(p.customer.email)

    page = await customer.get(f"/portal/tickets/{ticket_id}")
    assert f'href="/portal/tickets/{ticket_id}/rate"' in page.text
    form = await customer.get(f"/portal/tickets/{ticket_id}/rate")
    assert form.status_code == 200
    assert form.text.count('type="radio" name="rating"') == 5
    assert 'for="rate-comment"' in form.text

    # No rating chosen: the form again, with the comment kept.
    none = await customer.post(
        f"/portal/tickets/{ticket_id}/rate", data={"_csrf": csrf, "comment": "kept"}
    )
    assert none.status_code == 422 and "kept</textarea>" in none.text
    # Without the CSRF token: refused.
    forged = await customer.post(f"/portal/tickets/{ticket_id}/rate", data={"rating": "1"})
    assert forged.status_code == 403

    sent = await customer.post(
        f"/portal/tickets/{ticket_id}/rate",
        data={"_csrf": csrf, "rating": "4", "comment": "<b>good</b> & fast"},
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/portal/tickets/{ticket_id}?done=rated"
    back = await customer.get(sent.headers["location"])
    assert "Thank you for your rating!" in back.text
    assert 'data-rating="4"' in back.text
    assert "&lt;b&gt;good&lt;/b&gt; &amp; fast" in back.text  # escaped

    # The agent sees it on the ticket page (facts and history).
    agent, _ = await site.signed_in(p.agent.email)
    ticket_page = await agent.get(f"/agent/tickets/{ticket_id}")
    assert 'id="satisfaction"' in ticket_page.text and 'data-rating="4"' in ticket_page.text
    assert "&lt;b&gt;good&lt;/b&gt; &amp; fast" in ticket_page.text
    assert "rated the ticket" in ticket_page.text

    # Another customer cannot reach the form; staff get 403 from the portal.
    other, other_csrf = await site.signed_in(p.other.email)
    assert (await other.get(f"/portal/tickets/{ticket_id}/rate")).status_code == 404
    stolen = await other.post(
        f"/portal/tickets/{ticket_id}/rate", data={"_csrf": other_csrf, "rating": "1"}
    )
    assert stolen.status_code == 404
    assert (await agent.get(f"/portal/tickets/{ticket_id}/rate")).status_code == 403
    rating = await app.satisfaction.get(p.agent, ticket_id)
    assert rating is not None and rating.rating == 4

    # Signed out, the survey link leads to sign-in and back.
    anonymous = site.client()
    redirect = await anonymous.get(f"/portal/tickets/{ticket_id}/rate")
    assert redirect.status_code == 303
    assert redirect.headers["location"] == f"/login?next=/portal/tickets/{ticket_id}/rate"

"""Demo seeding (``ticketcore serve --demo``), in-process on both engines: the data is
created once, routed by the demo's plugins, and the printed tokens work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ticketcore.app import App
from ticketcore.demo import (
    ADMIN_EMAIL,
    CUSTOMER_EMAIL,
    DEMO_PLUGIN_SETTINGS,
    DEMO_PLUGINS,
    seed_demo,
)
from ticketcore.domain.commands import TicketFilters
from ticketcore.domain.enums import EntryKind, Status
from ticketcore.domain.models import Principal
from ticketcore.testing import api_client

HelpdeskFactory = Callable[..., Awaitable[App]]


async def test_seed_demo_once_with_routing_and_working_tokens(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(plugins=DEMO_PLUGINS, plugin=DEMO_PLUGIN_SETTINGS)
    first = await seed_demo(app)
    assert first.seeded is True
    assert first.admin_email == ADMIN_EMAIL and first.customer_email == CUSTOMER_EMAIL
    counts = {
        table: await app.db.fetchval(f"SELECT COUNT(*) AS n FROM {table}")
        for table in ("ticket", "app_user", "team", "entry")
    }
    assert counts == {"ticket": 5, "app_user": 6, "team": 3, "entry": 7}

    teams = {t["slug"]: t for t in await app.directory.teams()}
    system = Principal.system()
    by_subject = {
        t.subject: t for t in (await app.tickets.list(system, TicketFilters(), limit=10)).items
    }
    payment = by_subject["My payment failed twice"]
    assert payment.team_id == teams["billing"]["id"]
    assert payment.assignee_id in teams["billing"]["member_ids"]
    assert payment.status is Status.OPEN and payment.first_response_at is not None
    outage = by_subject["Server down in the Lyon office"]
    assert outage.team_id == teams["it-ops"]["id"]
    export = by_subject["How do I export my data?"]
    assert export.team_id == teams["support"]["id"]
    entries = await app.tickets.entries(system, payment.id)
    assert [e.kind for e in entries] == [
        EntryKind.MESSAGE_IN,
        EntryKind.MESSAGE_OUT,
        EntryKind.NOTE,
    ]

    second = await seed_demo(app)
    assert second.seeded is False
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 5
    assert second.admin_token != first.admin_token

    async with api_client(app) as api:
        for token in (first.admin_token, second.admin_token):
            listed = await api.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200
            assert len(listed.json()["items"]) == 5
        mine = await api.get(
            "/api/v1/tickets", headers={"Authorization": f"Bearer {second.customer_token}"}
        )
        assert mine.status_code == 200
        emails = {t["requester"]["email"] for t in mine.json()["items"]}
        assert emails == {CUSTOMER_EMAIL}
        assert len(mine.json()["items"]) == 2
        note = await api.get(
            f"/api/v1/tickets/{payment.id}/entries",
            headers={"Authorization": f"Bearer {first.customer_token}"},
        )
        assert [e["kind"] for e in note.json()] == ["message_in", "message_out"]
        # The demo's knowledge base answers the customer, in French too.
        found = await api.get(
            "/api/v1/kb/search",
            params={"q": "carte bancaire"},
            headers={"Authorization": f"Bearer {first.customer_token}"},
        )
        assert [h["title"] for h in found.json()] == ["Paiement par carte bancaire refusé"]
    # The demo's SLA policy gives the critical outage its 24x7 clock.
    assert outage.sla.policy == "critical" and outage.sla.resolution_due_at is not None

"""The core's SLA state with the ``policy`` plugin, on both engines: due times computed on
create and shown by the API (detail and list), the clock pausing while the ticket waits on
the customer or is on hold and resuming on their reply, first and next response met by an
agent's reply, resolution clearing the targets, reopening, the indexed "nearest to breach"
query, and migration 0006."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from ticketcore import (
    EscalationStep,
    Priority,
    SlaAlert,
    SlaTargets,
    Status,
    Ticket,
    hookimpl,
)
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.db.migrations import _m0006_sla, migrate
from ticketcore.domain.commands import (
    NewEntry,
    NewTicket,
    RequesterInput,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.models import Principal
from ticketcore.testing import Seed, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()

RULES = [
    {
        "name": "critical",
        "match": {"priority": ["critical"]},
        "first_response": "15m",
        "next_response": "20m",
        "resolution": "30m",
    },
    {"name": "standard", "first_response": "4h", "next_response": "8h", "resolution": "2d"},
]


def sla_settings(**policy: Any) -> dict[str, Any]:
    """Settings enabling the ``policy`` SLA plugin (24x7 calendar unless given)."""
    return {
        "plugins": {"sla": ["policy"]},
        "plugin": {"sla": {"policy": {"rules": RULES, **policy}}},
    }


async def sla_row(app: App, ticket_id: int) -> dict[str, Any]:
    (row,) = await app.db.fetch(
        "SELECT sla_due_at, sla_next_check_at, sla_timers, sla_paused_at FROM ticket WHERE id = {}",
        ticket_id,
    )
    return row


async def open_ticket(
    app: App, seed: Seed, priority: Priority = Priority.CRITICAL, subject: str = "Server outage"
) -> int:
    ticket = await app.tickets.create(
        seed.customer, NewTicket(subject=subject, body="Everything is down", priority=priority)
    )
    return ticket.id


async def move(app: App, ticket_id: int, transition: str) -> None:
    await app.tickets.transition(SYSTEM, ticket_id, TransitionRequest(transition=transition))


@pytest.mark.db
async def test_due_times_on_create_in_the_api_and_history(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**sla_settings())
    seed = await seed_helpdesk(app)
    t0 = clock.now()
    async with api_client(app) as client:
        response = await client.post(
            "/api/v1/tickets",
            json={"subject": "Server outage", "body": "Down", "priority": "critical"},
            headers=seed.headers("customer"),
        )
        assert response.status_code == 201, response.text
        created = response.json()
        ticket_id = created["id"]
        detail = await client.get(f"/api/v1/tickets/{ticket_id}", headers=seed.headers("agent"))
        listed = await client.get("/api/v1/tickets", headers=seed.headers("agent"))
        history = await client.get(
            f"/api/v1/tickets/{ticket_id}/events", headers=seed.headers("agent")
        )
        schema = await client.get("/schema/openapi.json")

    expected = {
        "policy": "critical",
        "first_response_due_at": (t0 + timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        "next_response_due_at": None,
        "resolution_due_at": (t0 + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "paused_since": None,
        "pauses": [],
        "awaiting_reply_since": None,
    }
    assert created["sla"] == expected
    assert detail.json()["sla"] == expected
    assert listed.json()["items"][0]["sla"] == expected
    assert schema.status_code == 200  # the nested SLA type is described in the OpenAPI
    sla_schema = schema.json()["components"]["schemas"]["TicketSla"]["properties"]
    assert set(sla_schema) == set(expected)
    (applied,) = [e for e in history.json() if e["kind"] == "sla_applied"]
    assert applied["data"] == {"policy": "critical"}
    assert applied["changes"]["resolution_due_at"][1].startswith("2026-01-05T09:30")

    row = await sla_row(app, ticket_id)
    assert row["sla_due_at"] == t0 + timedelta(minutes=15)  # the earliest target
    # 75 % of 15 minutes: the first-response warning is the first timer.
    assert row["sla_next_check_at"] == t0 + timedelta(minutes=11, seconds=15)
    assert await app.sla_timers.nearest_due(5) == [(ticket_id, t0 + timedelta(minutes=15))]


@pytest.mark.db
async def test_pause_while_waiting_on_the_customer_resume_on_their_reply(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**sla_settings())
    seed = await seed_helpdesk(app)
    t0 = clock.now()
    ticket_id = await open_ticket(app, seed)
    clock.advance(minutes=5)
    await app.tickets.add_entry(seed.agent, ticket_id, NewEntry(body="Looking"), internal=False)
    ticket = await app.tickets.snapshot(ticket_id)
    assert ticket.sla.first_response_due_at is None  # met
    assert ticket.sla.resolution_due_at == t0 + timedelta(minutes=30)

    clock.advance(minutes=5)  # 10 minutes of the 30 have run
    await move(app, ticket_id, "wait_for_customer")
    paused = await app.tickets.snapshot(ticket_id)
    assert paused.status is Status.PENDING_CUSTOMER
    assert paused.sla.paused_since == t0 + timedelta(minutes=10)
    assert paused.sla.resolution_due_at is None
    row = await sla_row(app, ticket_id)
    assert row["sla_next_check_at"] is None and row["sla_due_at"] is None  # out of the scans

    clock.advance(hours=3)  # the customer takes three hours to answer
    await app.tickets.add_entry(seed.customer, ticket_id, NewEntry(body="Here"), internal=False)
    resumed = await app.tickets.snapshot(ticket_id)
    assert resumed.status is Status.OPEN
    assert resumed.sla.paused_since is None
    assert resumed.sla.pauses == [(t0 + timedelta(minutes=10), t0 + timedelta(hours=3, minutes=10))]
    assert resumed.sla.resolution_due_at == t0 + timedelta(hours=3, minutes=30)
    # The customer's reply after the first response starts the next-response clock.
    assert resumed.sla.awaiting_reply_since == clock.now()
    assert resumed.sla.next_response_due_at == clock.now() + timedelta(minutes=20)

    clock.advance(minutes=2)
    await app.tickets.add_entry(seed.agent, ticket_id, NewEntry(body="Fixed?"), internal=False)
    answered = await app.tickets.snapshot(ticket_id)
    assert answered.sla.next_response_due_at is None and answered.sla.awaiting_reply_since is None

    events = [e.kind for e in await app.tickets.events(SYSTEM, ticket_id)]
    assert events.count("sla_updated") >= 3


@pytest.mark.db
async def test_hold_resolve_and_reopen(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**sla_settings())
    seed = await seed_helpdesk(app)
    t0 = clock.now()
    ticket_id = await open_ticket(app, seed)
    clock.advance(minutes=10)
    await move(app, ticket_id, "hold")
    clock.advance(minutes=60)
    await move(app, ticket_id, "open")
    ticket = await app.tickets.snapshot(ticket_id)
    assert ticket.sla.resolution_due_at == t0 + timedelta(minutes=90)
    # First response was still due: its clock paused too.
    assert ticket.sla.first_response_due_at == t0 + timedelta(minutes=75)

    clock.advance(minutes=5)
    await move(app, ticket_id, "resolve")
    resolved = await app.tickets.snapshot(ticket_id)
    assert resolved.sla.resolution_due_at is None and resolved.sla.first_response_due_at is None
    assert resolved.sla.policy == "critical"
    assert (await sla_row(app, ticket_id))["sla_next_check_at"] is None

    clock.advance(minutes=100)
    await move(app, ticket_id, "reopen")
    reopened = await app.tickets.snapshot(ticket_id)
    # The 100 minutes spent resolved do not count.
    assert reopened.sla.resolution_due_at == t0 + timedelta(minutes=190)


@pytest.mark.db
async def test_business_calendar_and_no_matching_rule(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(
        **sla_settings(
            rules=[{"name": "vip", "match": {"vip": True}, "first_response": "2h"}],
            calendar={"timezone": "UTC", "hours": {"mon": ["09:00-10:00"], "tue": ["09:00-17:00"]}},
        )
    )
    seed = await seed_helpdesk(app)
    org = await app.directory.create_organisation("Big Client", vip=True)
    await app.directory.create_contact("Victor", "victor@big.example", organisation_id=org)
    plain = await open_ticket(app, seed, Priority.NORMAL)
    assert (await app.tickets.snapshot(plain)).sla.policy is None
    ticket = await app.tickets.create(
        SYSTEM,
        NewTicket(subject="Help", body="x", requester=RequesterInput(email="victor@big.example")),
    )
    assert ticket.requester.vip and ticket.sla.policy == "vip"
    # Monday 09:00 + 2 business hours: one on Monday, the other Tuesday 09:00-10:00.
    assert ticket.sla.first_response_due_at == clock.now() + timedelta(days=1, hours=1)


@pytest.mark.db
async def test_nearest_to_breach_is_ordered_and_skips_tickets_without_a_clock(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**sla_settings())
    seed = await seed_helpdesk(app)
    standard = await open_ticket(app, seed, Priority.NORMAL, "Printer")
    clock.advance(minutes=1)
    critical = await open_ticket(app, seed)
    paused = await open_ticket(app, seed)
    await move(app, paused, "hold")
    nearest = await app.sla_timers.nearest_due(10)
    assert [ticket_id for ticket_id, _ in nearest] == [critical, standard]
    assert nearest[0][1] == clock.now() + timedelta(minutes=15)


@pytest.mark.db
async def test_migration_0006_is_idempotent_and_recorded(helpdesk: App) -> None:
    await _m0006_sla(helpdesk.db)  # columns and indexes already there: no error
    assert await migrate(helpdesk.db) == []
    versions = {r["version"] for r in await helpdesk.db.fetch("SELECT version FROM schema_version")}
    assert 6 in versions
    ticket = await helpdesk.tickets.create(
        SYSTEM,
        NewTicket(subject="No SLA here", body="x", requester=RequesterInput(email="a@b.example")),
    )
    assert ticket.sla.policy is None and ticket.sla.resolution_due_at is None
    assert (await sla_row(helpdesk, ticket.id))["sla_next_check_at"] is None


class FlatPolicy:
    """An organisation's own SLA policy, replacing the shipped one: one hour to resolve
    anything, and a breach moves the ticket to the ``oncall`` team."""

    @hookimpl
    def compute_sla(self, ticket: Ticket, now: datetime) -> SlaTargets | None:
        if ticket.status in (Status.RESOLVED, Status.CLOSED):
            return None
        return SlaTargets(policy="flat", resolution_due=ticket.created_at + timedelta(hours=1))

    @hookimpl
    def sla_escalation(self, ticket: Ticket, alert: SlaAlert) -> list[EscalationStep] | None:
        if alert.stage != "breach":
            return None
        return [EscalationStep(name="to on-call", reassign_team="oncall")]


@pytest.mark.db
async def test_an_organisation_replaces_the_policy_with_its_own_plugin(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(extra_plugins=[("flat_policy", FlatPolicy())])
    seed = await seed_helpdesk(app)
    oncall = await app.directory.create_team("On call", "oncall")
    ticket_id = await open_ticket(app, seed, Priority.LOW)
    ticket = await app.tickets.snapshot(ticket_id)
    assert ticket.sla.policy == "flat"
    assert ticket.sla.resolution_due_at == clock.now() + timedelta(hours=1)
    clock.advance(minutes=61)
    await app.jobs.drain()
    moved = await app.tickets.snapshot(ticket_id)
    assert moved.team_id == oncall
    kinds = [e.kind for e in await app.tickets.events(SYSTEM, ticket_id)]
    assert kinds[-2:] == ["sla_breach", "sla_escalated"]


@pytest.mark.db
async def test_a_priority_change_recomputes_the_targets(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**sla_settings())
    seed = await seed_helpdesk(app)
    t0 = clock.now()
    ticket_id = await open_ticket(app, seed, Priority.NORMAL)
    assert (await app.tickets.snapshot(ticket_id)).sla.policy == "standard"
    clock.advance(minutes=5)
    changed = await app.tickets.update(
        seed.agent, ticket_id, TicketPatch(priority=Priority.CRITICAL), 1
    )
    assert changed.sla.policy == "critical"
    assert changed.sla.resolution_due_at == t0 + timedelta(minutes=30)
    (event,) = [e for e in await app.tickets.events(SYSTEM, ticket_id) if e.kind == "sla_updated"]
    assert event.changes["sla_policy"].new == "critical"

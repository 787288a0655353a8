"""SLA warnings, breaches and escalation chains through the worker, on both engines.

The seed's scenario end to end: a critical "server outage" is not resolved in 30 minutes on
the test clock; the escalation runs once, the IT manager's notification reaches a real SMTP
server (aiosmtpd) and a webhook receiver, and the history shows every step. Also: each
alert fires exactly once per target (more scans, a restart of the helpdesk), a worker whose
lease expired loses the tickets to another without double work, and the steps that change
the ticket (raise priority, reassign to a team) are recorded with their changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from test_notifier_email import Smtp, text_of

from ticketcore import Priority
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewEntry, NewTicket, NewUser, RequesterInput, TicketPatch
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal, TicketEvent
from ticketcore.errors import VersionConflict
from ticketcore.plugins.notifiers.testing import HttpReceiver
from ticketcore.testing import seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()
MANAGER = "it-manager@example.org"
LEAD = "lead@example.org"

RULES = [
    {
        "name": "critical",
        "match": {"priority": ["critical"]},
        "first_response": "15m",
        "resolution": "30m",
    },
    {"name": "standard", "first_response": "4h", "resolution": "2d"},
]
CHAIN = [
    {"notify": ["assignee"]},
    {"notify": ["team_lead"]},
    {"name": "IT manager", "notify": [MANAGER]},
]


@pytest.fixture
def smtp() -> Any:
    server = Smtp().start()
    yield server
    server.stop()


def settings(
    *,
    escalations: list[dict[str, Any]] | None = None,
    notifiers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    chains = [{"stage": "breach", "targets": ["resolution"], "rules": ["critical"], "steps": CHAIN}]
    return {
        "plugins": {"sla": ["policy"], "notifiers": list(notifiers or {})},
        "plugin": {
            "sla": {
                "policy": {
                    "rules": RULES,
                    "team_leads": {"support": LEAD},
                    "escalations": chains if escalations is None else escalations,
                }
            },
            "notifiers": notifiers or {},
        },
    }


async def history(app: App, ticket_id: int) -> list[TicketEvent]:
    return await app.tickets.events(SYSTEM, ticket_id)


def sla_kinds(events: list[TicketEvent]) -> list[tuple[str, str, int | None]]:
    """(kind, target, step) of the SLA alerts and escalation steps, in order."""
    return [
        (e.kind, e.data["target"], e.data.get("step"))
        for e in events
        if e.kind in ("sla_warning", "sla_breach", "sla_escalated")
    ]


async def outage(app: App, assignee: Principal, team_id: int) -> int:
    ticket = await app.tickets.create(
        assignee,
        NewTicket(
            subject="Server outage",
            body="The production server is down.",
            priority=Priority.CRITICAL,
            requester=RequesterInput(email="ops@customer.test"),
            team_id=team_id,
            assignee_id=assignee.id,
        ),
    )
    return ticket.id


@pytest.mark.db
async def test_outage_escalates_once_to_the_manager_by_mail_and_webhook(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock, smtp: Smtp
) -> None:
    async with HttpReceiver() as receiver:
        config = settings(
            notifiers={
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "from_address": "support@help.example",
                    "timeout_seconds": 5,
                },
                "webhook": {"urls": [receiver.url()], "secret": "whsec-sla"},
            }
        )
        app = await helpdesk_factory(**config)
        seed = await seed_helpdesk(app)
        ticket_id = await outage(app, seed.agent, seed.team_id)

        clock.advance(minutes=12)  # the first response warns at 75 % of 15 minutes
        assert await app.jobs.drain() >= 1
        assert sla_kinds(await history(app, ticket_id)) == [("sla_warning", "first_response", None)]
        assert not smtp.mailbox.to(MANAGER)

        clock.advance(minutes=18)  # 30 minutes: not answered, not resolved
        await app.jobs.drain()
        for _ in range(3):  # more scans, later: nothing fires again
            clock.advance(minutes=5)
            await app.jobs.drain()

        events = await history(app, ticket_id)
        assert sla_kinds(events) == [
            ("sla_warning", "first_response", None),
            ("sla_breach", "first_response", None),
            ("sla_warning", "resolution", None),
            ("sla_breach", "resolution", None),
            ("sla_escalated", "resolution", 1),
            ("sla_escalated", "resolution", 2),
            ("sla_escalated", "resolution", 3),
        ]
        steps = [e for e in events if e.kind == "sla_escalated"]
        assert [(s.data["name"], s.data["recipients"]) for s in steps] == [
            ("assignee", ["agent@example.org"]),
            ("team_lead", [LEAD]),
            ("IT manager", [MANAGER]),
        ]
        assert all(s.actor.kind == "system" and s.actor.name == "sla" for s in steps)

        (mail,) = smtp.mailbox.to(MANAGER)
        assert mail["Subject"] == f"[SLA BREACHED] #{ticket_id} Server outage"
        body = text_of(mail)
        assert "Target missed: resolution" in body
        assert "It was due at: 2026-01-05 09:30 UTC" in body
        assert len(smtp.mailbox.to(LEAD)) == 1
        # the assignee got the warnings, the breaches and the first step
        assert len(smtp.mailbox.to("agent@example.org")) == 5

        posted = Counter(
            (r.json()["kind"], tuple(r.json()["recipients"])) for r in receiver.requests
        )
        assert posted[("sla_breach", (MANAGER,))] == 1
        deliveries = Counter(r.headers["x-ticketcore-delivery"] for r in receiver.requests)
        assert len(deliveries) == 7 and set(deliveries.values()) == {1}
        manager_post = next(r for r in receiver.requests if r.json()["recipients"] == [MANAGER])
        assert manager_post.headers["x-ticketcore-kind"] == "sla_breach"
        assert manager_post.json()["data"]["step_name"] == "IT manager"
        jobs = await app.db.fetch("SELECT status FROM job WHERE kind = 'notify'")
        assert {j["status"] for j in jobs} == {"done"} and len(jobs) == 7

        # A restart (a new helpdesk on the same database) fires nothing again.
        await app.stop()
        again = await helpdesk_factory(**config)
        clock.advance(hours=1)
        await again.jobs.drain()
        assert sla_kinds(await history(again, ticket_id)) == sla_kinds(events)
        assert len(smtp.mailbox.to(MANAGER)) == 1
        assert len(receiver.requests) == 7


@pytest.mark.db
async def test_a_worker_whose_lease_expired_loses_its_tickets_without_double_work(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    first = await helpdesk_factory(**settings())
    seed = await seed_helpdesk(first)
    ids = [await outage(first, seed.agent, seed.team_id) for _ in range(3)]
    second = await helpdesk_factory(**settings())
    assert first.jobs.worker_id != second.jobs.worker_id
    clock.advance(minutes=31)

    claimed = await first.sla_timers.claim()
    assert claimed == ids
    assert await second.sla_timers.claim() == []  # leased to the first worker
    clock.advance(seconds=first.sla_timers.lease.total_seconds() + 1)  # first worker stalls
    assert await second.sla_timers.claim() == ids
    await first.sla_timers.fire(claimed)  # too late: no longer its tickets, nothing happens
    for ticket_id in ids:
        assert sla_kinds(await history(first, ticket_id)) == []
    await second.sla_timers.fire(ids)
    await second.sla_timers.fire(ids)  # twice: the lease is released, nothing more
    for ticket_id in ids:
        kinds = [k for k, *_ in sla_kinds(await history(first, ticket_id))]
        assert kinds == ["sla_warning", "sla_breach"] * 2 + ["sla_escalated"] * 3
    rows = await first.db.fetch(
        "SELECT sla_locked_by, sla_next_check_at FROM ticket WHERE id IN ({}, {}, {})", *ids
    )
    assert all(r["sla_locked_by"] is None and r["sla_next_check_at"] is None for r in rows)


@pytest.mark.db
async def test_steps_that_raise_priority_and_reassign_change_the_ticket(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    chain = [
        {"stage": "warning", "targets": ["resolution"], "steps": [{"raise_priority": "high"}]},
        {
            "stage": "breach",
            "targets": ["resolution"],
            "steps": [
                {"raise_priority": "critical"},
                {"reassign_team": "senior"},
                {"reassign_team": "nowhere"},
                {"notify": ["assignee"]},
            ],
        },
    ]
    app = await helpdesk_factory(**settings(escalations=chain))
    seed = await seed_helpdesk(app)
    senior = await app.directory.create_team("Senior", "senior")
    await app.auth.create_user(
        NewUser(email="sam@senior.example", name="Sam", role=Role.AGENT, team_ids=[senior])
    )
    ticket = await app.tickets.create(
        seed.agent,
        NewTicket(
            subject="Slow pages",
            body="x",
            requester=RequesterInput(email="c@customer.test"),
            team_id=seed.team_id,
            assignee_id=seed.agent.id,
        ),
    )
    assert ticket.sla.policy == "standard"  # normal priority: 2 days to resolve
    clock.advance(hours=37)  # 75 % of 48 hours
    await app.jobs.drain()
    warned = await app.tickets.snapshot(ticket.id)
    assert warned.priority is Priority.HIGH and warned.version == ticket.version + 1

    clock.advance(hours=12)
    await app.jobs.drain()
    after = await app.tickets.snapshot(ticket.id)
    assert after.priority is Priority.CRITICAL
    assert after.team_id == senior and after.assignee_id is None
    steps = [e for e in await history(app, ticket.id) if e.kind == "sla_escalated"]
    assert [(s.data["stage"], s.data["action"], s.data.get("skipped")) for s in steps] == [
        ("warning", "raise_priority", None),
        ("breach", "raise_priority", None),
        ("breach", "reassign_team", None),
        ("breach", "reassign_team", "no team 'nowhere'"),
        # recipients are resolved when the alert fires: the agent who had the ticket then
        ("breach", "notify", None),
    ]
    assert steps[4].data["recipients"] == ["agent@example.org"]
    assert steps[0].changes["priority"].old == "normal"
    assert steps[0].changes["priority"].new == "high"
    assert steps[2].changes["team_id"].new == senior
    assert steps[2].changes["assignee_id"].old == seed.agent.id
    # An agent holding the old version gets a conflict instead of undoing the escalation.
    with pytest.raises(VersionConflict):
        await app.tickets.update(seed.agent, ticket.id, TicketPatch(priority=Priority.LOW), 1)


@pytest.mark.db
async def test_next_response_alerts_fire_again_for_each_unanswered_message(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    rules = [{"name": "chat", "first_response": "10m", "next_response": "20m"}]
    config = settings(escalations=[])
    config["plugin"]["sla"]["policy"]["rules"] = rules
    app = await helpdesk_factory(**config)
    seed = await seed_helpdesk(app)
    ticket = await app.tickets.create(seed.customer, NewTicket(subject="Question", body="Hi"))
    await app.tickets.add_entry(seed.agent, ticket.id, NewEntry(body="Hello"), internal=False)
    for _ in range(2):
        await app.tickets.add_entry(seed.customer, ticket.id, NewEntry(body="?"), internal=False)
        clock.advance(minutes=25)
        await app.jobs.drain()
        await app.tickets.add_entry(seed.agent, ticket.id, NewEntry(body="!"), internal=False)
    kinds = sla_kinds(await history(app, ticket.id))
    assert (
        kinds
        == [
            ("sla_warning", "next_response", None),
            ("sla_breach", "next_response", None),
        ]
        * 2
    )

"""Automation rules on a new ticket, evaluated while it is written (both engines): the
ticket is stored with the rules' changes and their history, no job is queued, chains and
time-rule timers work, anything the inline path does not cover goes to the worker as
before, a rolled-back creation leaves no trace, and for any set of rules the inline path
ends exactly where the worker's does (a hypothesis property)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from automation_helpers import (
    SYSTEM,
    HelpdeskFactory,
    history,
    new_ticket,
    rule,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import TicketFilters
from ticketcore.domain.models import Ticket
from ticketcore.services import ticket_writer
from ticketcore.testing import InsertFailure, Seed, seed_helpdesk


@pytest.fixture
async def app(helpdesk_factory: HelpdeskFactory) -> App:
    return await helpdesk_factory()


@pytest.fixture
async def seed(app: App) -> Seed:
    return await seed_helpdesk(app)


async def jobs_of(app: App, kind: str) -> int:
    return int(await app.db.fetchval("SELECT COUNT(*) AS n FROM job WHERE kind = {}", kind))


async def test_a_new_ticket_is_written_with_its_rules_changes_and_no_job(
    app: App, seed: Seed
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="outage",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "outage"}],
            actions=[
                {"type": "add_tags", "tags": ["Outage", "ops"]},
                {"type": "set_field", "field": "priority", "value": "critical"},
                {"type": "set_field", "field": "category", "value": "incident"},
            ],
        ),
    )
    ticket = await new_ticket(app, "Total outage in Paris")
    # Returned by create, before any worker ran: the row already holds the changes.
    assert (ticket.tags, ticket.priority.value, ticket.category) == (
        ["outage", "ops"],
        "critical",
        "incident",
    )
    assert await jobs_of(app, "automation") == 0
    stored = await app.tickets.snapshot(ticket.id)
    assert (stored.tags, stored.priority, stored.category) == (
        ticket.tags,
        ticket.priority,
        ticket.category,
    )
    events = await history(app, ticket.id)
    assert [e.kind for e in events] == [
        "created",
        "updated",
        "updated",
        "updated",
        "automation_fired",
    ]
    created, *updates, fired = events
    assert all(e.actor.name == "rule 'outage'" and e.actor.kind == "system" for e in updates)
    assert [sorted(e.changes) for e in updates] == [["tags"], ["priority"], ["category"]]
    assert updates[1].changes["priority"].old == "normal"
    assert updates[1].changes["priority"].new == "critical"
    assert fired.data["event_id"] == created.id and fired.data["event_kind"] == "created"
    assert fired.data["actions"] == [
        "add tags outage, ops",
        "set priority to 'critical'",
        "set category to 'incident'",
    ]
    # The tag filter's table too (on PostgreSQL written in the ticket's own statement).
    rows = await app.db.fetch("SELECT tag FROM ticket_tag WHERE ticket = {}", ticket.id)
    assert sorted(r["tag"] for r in rows) == ["ops", "outage"]
    claims = await app.db.fetch("SELECT rule, event, ticket, outcome FROM automation_fired")
    assert [(r["event"], r["ticket"], r["outcome"]) for r in claims] == [
        (created.id, ticket.id, "fired")
    ]
    # Nothing is left for the worker to do twice.
    await app.jobs.drain()
    assert [e.kind for e in await history(app, ticket.id)].count("automation_fired") == 1
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM automation_fired") == 1
    # A ticket no rule matches: no change, no job, no claim.
    calm = await new_ticket(app, "Printer jam")
    assert calm.tags == [] and [e.kind for e in await history(app, calm.id)] == ["created"]
    assert await jobs_of(app, "automation") == 0


async def test_a_notify_action_queues_the_workers_notification_in_the_same_write(
    app: App, seed: Seed
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="page ops",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "down"}],
            actions=[
                {"type": "set_field", "field": "priority", "value": "critical"},
                {
                    "type": "notify",
                    "to": ["assignee", "ops@example.test", "requester"],
                    "subject": "{{ ticket.number }} is {{ ticket.priority }}",
                    "body": "From {{ requester.email }}",
                },
            ],
        ),
    )
    ticket = await new_ticket(app, "site down", team_id=seed.team_id, assignee_id=seed.agent.id)
    created = (await history(app, ticket.id))[0]
    [job] = await app.db.fetch("SELECT idempotency_key, payload FROM job WHERE kind = 'notify'")
    payload = job["payload"]
    notice = (json.loads(payload) if isinstance(payload, str) else payload)["notification"]
    [rule_id] = [r.id for r in await app.automation.list(seed.admin)]
    assert job["idempotency_key"] == f"automation:{rule_id}:{created.id}:1:notify"
    assert notice["recipients"] == [seed.agent.email, "ops@example.test", "carol@customer.test"]
    assert notice["subject"] == f"#{ticket.id} is critical"  # after the rule's first action
    assert notice["body"] == "From carol@customer.test"
    assert notice["data"] == {"rule": "page ops", "rule_id": rule_id}
    assert await jobs_of(app, "automation") == 0
    fired = [e for e in await history(app, ticket.id) if e.kind == "automation_fired"]
    assert fired[0].data["actions"] == [
        "set priority to 'critical'",
        "notify assignee, ops@example.test, requester",
    ]


async def test_tickets_created_together_each_get_their_own_tags(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="odd",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "odd"}],
            actions=[{"type": "add_tags", "tags": ["odd"]}],
        ),
    )
    subjects = [f"ticket {i} {'odd' if i % 2 else 'even'}" for i in range(12)]
    created = await asyncio.gather(
        *[new_ticket(app, subject, tags=[f"n{i}"]) for i, subject in enumerate(subjects)]
    )
    for i, ticket in enumerate(created):
        expected = [f"n{i}", "odd"] if i % 2 else [f"n{i}"]
        assert ticket.tags == expected
        rows = await app.db.fetch("SELECT tag FROM ticket_tag WHERE ticket = {}", ticket.id)
        assert sorted(r["tag"] for r in rows) == sorted(expected)
    # The list's tag filter finds exactly the tagged ones.
    page = await app.tickets.list(seed.admin, TicketFilters(tag="odd"), limit=50)
    assert sorted(t.id for t in page.items) == [t.id for i, t in enumerate(created) if i % 2]


async def test_a_chain_of_rules_runs_inline_and_each_firing_names_its_event(
    app: App, seed: Seed
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="vip tag",
            events=["created"],
            conditions=[{"field": "requester.email", "op": "contains", "value": "@customer"}],
            actions=[{"type": "add_tags", "tags": ["customer"]}],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="customers first",
            events=["updated"],
            conditions=[{"field": "tags", "op": "added", "value": "customer"}],
            actions=[{"type": "set_field", "field": "priority", "value": "high"}],
        ),
    )
    ticket = await new_ticket(app)
    assert (ticket.tags, ticket.priority.value) == (["customer"], "high")
    events = await history(app, ticket.id)
    by_kind = [(e.kind, e.actor.name) for e in events]
    assert by_kind[:3] == [
        ("created", SYSTEM.actor.name),
        ("updated", "rule 'vip tag'"),
        ("updated", "rule 'customers first'"),
    ]
    fired = {e.data["rule"]: e.data for e in events if e.kind == "automation_fired"}
    assert fired["vip tag"]["event_id"] == events[0].id
    assert fired["customers first"]["event_id"] == events[1].id  # the tag change
    assert fired["customers first"]["event_kind"] == "updated"
    assert await jobs_of(app, "automation") == 0


async def test_rules_with_other_actions_loops_and_sla_changes_go_to_the_worker(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(
        plugins={"sla": ["policy"]},
        plugin={"sla": {"policy": {"rules": [{"name": "all", "resolution": "8h"}]}}},
    )
    seed = await seed_helpdesk(app)
    await app.automation.create(
        seed.admin,
        rule(
            name="note it",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "note"}],
            actions=[{"type": "add_tags", "tags": ["noted"]}, {"type": "note", "body": "seen"}],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="raise",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "raise"}],
            actions=[{"type": "set_field", "field": "priority", "value": "high"}],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="ping",
            events=["created", "updated"],
            conditions=[{"field": "subject", "op": "contains", "value": "loop"}],
            actions=[
                {"type": "add_tags", "tags": ["ping"]},
                {"type": "remove_tags", "tags": ["ping"]},
            ],
        ),
    )
    noted = await new_ticket(app, "please note")
    raised = await new_ticket(app, "please raise")  # an SLA policy is on: its clock moves
    looping = await new_ticket(app, "a loop")
    for ticket in (noted, raised, looping):
        assert ticket.tags == [] and ticket.priority.value == "normal"  # untouched for now
    assert await jobs_of(app, "automation") == 3
    await app.jobs.drain()
    assert (await app.tickets.snapshot(noted.id)).tags == ["noted"]
    assert (await app.tickets.snapshot(raised.id)).priority.value == "high"
    loop_kinds = [e.kind for e in await history(app, looping.id)]
    assert "automation_loop_stopped" in loop_kinds  # recorded by the worker, as before


async def test_a_time_rule_anchored_on_creation_gets_its_timer_in_the_same_write(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="unassigned for an hour",
            trigger="time",
            since="created",
            after_minutes=60,
            conditions=[{"field": "assignee_id", "op": "is_not_set"}],
            actions=[{"type": "add_tags", "tags": ["stale"]}],
        ),
    )
    ticket = await new_ticket(app)
    [created] = await history(app, ticket.id)
    [timer] = await app.db.fetch(
        "SELECT idempotency_key, run_at FROM job WHERE kind = 'automation_timer'"
    )
    rule_id = (await app.automation.list(seed.admin))[0].id
    assert timer["idempotency_key"] == f"automation_timer:{rule_id}:{created.id}"
    assert await jobs_of(app, "automation") == 0
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).tags == []
    clock.advance(minutes=61)
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).tags == ["stale"]


async def test_a_rolled_back_creation_leaves_no_firing(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(name="tag all", events=["created"], actions=[{"type": "add_tags", "tags": ["x"]}]),
    )
    failure = await InsertFailure.install(app.db, "entry")
    await failure.on()
    with pytest.raises(Exception, match="injected failure"):
        await new_ticket(app)
    await failure.off()
    for table in ("ticket", "ticket_event", "automation_fired", "job"):
        assert await app.db.fetchval(f"SELECT COUNT(*) AS n FROM {table}") == 0, table
    ticket = await new_ticket(app)
    assert ticket.tags == ["x"]
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM automation_fired") == 1


# --- the inline path ends where the worker's does -----------------------------------------

TAGS = ("a", "b", "c")
WORDS = ("disk", "mail", "vpn")
conditions = st.one_of(
    st.builds(lambda w: {"field": "subject", "op": "contains", "value": w}, st.sampled_from(WORDS)),
    st.builds(lambda t: {"field": "tags", "op": "added", "value": t}, st.sampled_from(TAGS)),
    st.builds(lambda t: {"field": "tags", "op": "contains", "value": t}, st.sampled_from(TAGS)),
    st.builds(
        lambda p: {"field": "priority", "op": "changed_to", "value": p},
        st.sampled_from(("low", "high", "critical")),
    ),
    st.builds(
        lambda c: {"field": "category", "op": "is", "value": c},
        st.sampled_from(("billing", "it")),
    ),
)
actions = st.one_of(
    st.builds(
        lambda ts: {"type": "add_tags", "tags": ts},
        st.lists(st.sampled_from(TAGS), min_size=1, max_size=2),
    ),
    st.builds(
        lambda ts: {"type": "remove_tags", "tags": ts},
        st.lists(st.sampled_from(TAGS), min_size=1, max_size=2),
    ),
    st.builds(
        lambda p: {"type": "set_field", "field": "priority", "value": p},
        st.sampled_from(("low", "high", "critical")),
    ),
    st.builds(
        lambda c: {"type": "set_field", "field": "category", "value": c},
        st.sampled_from(("billing", "it")),
    ),
    st.builds(
        lambda to: {
            "type": "notify",
            "to": to,
            "subject": "{{ ticket.subject }} is {{ ticket.priority }}",
            "body": "for {{ requester.email }}, {{ agent.name }}",
        },
        st.lists(
            st.sampled_from(("requester", "assignee", "ops@example.test")),
            min_size=1,
            max_size=3,
        ),
    ),
)
rule_data = st.fixed_dictionaries(
    {
        "events": st.lists(
            st.sampled_from(("created", "updated")), min_size=1, max_size=2, unique=True
        ),
        "conditions": st.lists(conditions, max_size=2),
        "actions": st.lists(actions, min_size=1, max_size=3),
    }
)


async def _outcome(app: App, ticket: Ticket) -> tuple[Any, ...]:
    await app.jobs.drain()
    final = await app.tickets.snapshot(ticket.id)
    events = await history(app, ticket.id)
    fired = sorted(
        (e.data["rule"], e.data["event_kind"]) for e in events if e.kind == "automation_fired"
    )
    stopped = sorted(e.data["rule"] for e in events if e.kind == "automation_loop_stopped")
    changes = sorted(
        (e.actor.name, tuple(sorted(e.changes))) for e in events if e.kind == "updated"
    )
    notices = []
    for row in await app.db.fetch("SELECT payload FROM job WHERE kind = 'notify'"):
        payload = row["payload"]
        notice = (json.loads(payload) if isinstance(payload, str) else payload)["notification"]
        if notice["ticket_id"] == ticket.id:
            notices.append(
                (
                    tuple(notice["recipients"]),
                    notice["subject"],
                    notice["body"],
                    notice["data"]["rule"],
                )
            )
    return (
        final.tags,
        final.priority.value,
        final.category,
        fired,
        stopped,
        changes,
        sorted(notices),
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=st.lists(rule_data, min_size=1, max_size=4), subject=st.sampled_from(WORDS))
async def test_inline_evaluation_ends_where_the_worker_does(
    app: App, seed: Seed, monkeypatch: pytest.MonkeyPatch, rules: list[dict[str, Any]], subject: str
) -> None:
    for existing in await app.automation.list(seed.admin):
        await app.automation.delete(seed.admin, existing.id)
    for i, data in enumerate(rules):
        await app.automation.create(seed.admin, rule(name=f"r{i}", **data))
    fields = {"tags": ["a"], "team_id": seed.team_id, "assignee_id": seed.agent.id}
    inline = await new_ticket(app, f"{subject} trouble", **fields)
    with monkeypatch.context() as patched:  # the same rules, evaluated by the worker
        patched.setattr(ticket_writer, "evaluate_new_ticket", lambda *a, **k: None)
        deferred = await new_ticket(app, f"{subject} trouble", **fields)
    assert await _outcome(app, inline) == await _outcome(app, deferred)

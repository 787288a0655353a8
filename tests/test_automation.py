"""Automation rules end to end on both engines: event triggers with conditions on fields and
on changes, every kind of action recorded with the rule as the actor, evaluation in the
worker after commit, rule order and disabling, exactly-once firing with two workers, the
loop guard (cycle and depth cap), failures recorded once, webhooks retried, and time-based
rules (remind after 5 days, close after 7) driven by a frozen clock."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from automation_helpers import (
    SYSTEM,
    HelpdeskFactory,
    history,
    kinds,
    new_ticket,
    rule,
)

from ticketcore import Priority
from ticketcore.app import App, create_helpdesk
from ticketcore.clock import FrozenClock
from ticketcore.domain.automation import Reorder
from ticketcore.domain.commands import (
    NewEntry,
    NewMacro,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.models import Principal, Ticket
from ticketcore.errors import PermissionDenied, ValidationFailed
from ticketcore.jobs import JobRecord
from ticketcore.services.automation_engine import run_events_job
from ticketcore.testing import Seed, seed_helpdesk


@pytest.fixture
async def app(helpdesk_factory: HelpdeskFactory) -> App:
    return await helpdesk_factory()


@pytest.fixture
async def seed(app: App) -> Seed:
    return await seed_helpdesk(app)


async def patch(app: App, ticket_id: int, **changes: Any) -> Ticket:
    current = await app.tickets.snapshot(ticket_id)
    return await app.tickets.update(
        SYSTEM, ticket_id, TicketPatch(**changes), version=current.version
    )


# --- event rules ---------------------------------------------------------------------------


async def test_priority_became_critical_notifies_notes_and_tags(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="critical escalation",
            events=["updated"],
            conditions=[{"field": "priority", "op": "changed_to", "value": "critical"}],
            actions=[
                {"type": "add_tags", "tags": ["Escalated"]},
                {"type": "note", "body": "Escalated: {{ ticket.subject }} is critical"},
                {"type": "notify", "to": ["assignee", "lead@help.test"], "subject": "Critical!"},
                {"type": "set_field", "field": "team", "value": "support"},
            ],
        ),
    )
    ticket = await new_ticket(app, "Server down", assignee_id=seed.agent.id, team_id=seed.team_id)
    await patch(app, ticket.id, priority="high")  # not critical: nothing
    await app.jobs.drain()
    assert "automation_fired" not in kinds(await history(app, ticket.id))

    await patch(app, ticket.id, priority="critical")
    # Not inside the write: the rule runs from the outbox, in the worker.
    assert (await app.tickets.snapshot(ticket.id)).tags == []
    assert await app.db.fetchval(
        "SELECT COUNT(*) AS n FROM job WHERE kind = 'automation' AND status = 'pending'"
    )
    await app.jobs.drain()

    after = await app.tickets.snapshot(ticket.id)
    assert after.tags == ["escalated"]
    events = await history(app, ticket.id)
    by_rule = [e for e in events if e.actor.name == "rule 'critical escalation'"]
    assert kinds(by_rule) == ["updated", "note_added", "automation_fired"]
    assert by_rule[0].changes["tags"].new == ["escalated"]
    fired = by_rule[-1]
    assert fired.data["rule"] == "critical escalation"
    assert fired.data["actions"] == [
        "add tags escalated",
        "internal note",
        "notify assignee, lead@help.test",
        "set team to 'support'",
    ]
    notes = [e for e in await app.tickets.entries(SYSTEM, ticket.id) if e.kind == "note"]
    assert notes[-1].body_text == "Escalated: Server down is critical"
    [job] = await app.db.fetch("SELECT payload FROM job WHERE kind = 'notify'")
    payload = json.loads(job["payload"]) if isinstance(job["payload"], str) else job["payload"]
    assert payload["notification"]["recipients"] == ["agent@example.org", "lead@help.test"]
    assert payload["notification"]["subject"] == "Critical!"


async def test_status_change_channel_and_text_conditions(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="refunds by mail to billing",
            events=["created"],
            conditions=[
                {"field": "channel", "op": "is", "value": "email"},
                {"field": "text", "op": "contains", "value": "REFUND"},
            ],
            actions=[
                {"type": "set_field", "field": "category", "value": "billing"},
                {"type": "set_field", "field": "assignee", "value": "agent2@example.org"},
            ],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="thank on resolve from pending",
            events=["status_changed"],
            conditions=[
                {"field": "status", "op": "changed_from", "value": "pending_customer"},
                {"field": "status", "op": "changed_to", "value": "resolved"},
            ],
            actions=[{"type": "add_tags", "tags": ["resolved-after-wait"]}],
        ),
    )
    web = await new_ticket(app, "I want a refund", channel="web")
    mail = await new_ticket(app, "Refund please", channel="email")
    await app.jobs.drain()
    assert (await app.tickets.snapshot(web.id)).category is None
    routed = await app.tickets.snapshot(mail.id)
    assert (routed.category, routed.assignee_id) == ("billing", seed.agent2.id)

    for transitions, tagged in ((["resolve"], False), (["wait_for_customer", "resolve"], True)):
        ticket = await new_ticket(app, "Question")
        for name in transitions:
            await app.tickets.transition(SYSTEM, ticket.id, TransitionRequest(transition=name))
        await app.jobs.drain()
        tags = (await app.tickets.snapshot(ticket.id)).tags
        assert ("resolved-after-wait" in tags) is tagged


async def test_tag_added_and_message_conditions(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="vip tag",
            events=["updated"],
            conditions=[{"field": "tags", "op": "added", "value": "vip"}],
            actions=[{"type": "set_field", "field": "priority", "value": "high"}],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="angry customer",
            events=["message_added"],
            conditions=[
                {"field": "actor.kind", "op": "is_not", "value": "system"},
                {"field": "message", "op": "matches", "value": r"\blawyer\b"},
            ],
            actions=[{"type": "add_tags", "tags": ["legal"]}],
        ),
    )
    ticket = await new_ticket(app)
    await patch(app, ticket.id, tags=["other"])
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).priority == "normal"
    await patch(app, ticket.id, tags=["other", "VIP"])
    await app.tickets.add_entry(seed.customer, ticket.id, NewEntry(body="calm"), internal=False)
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).tags == ["other", "vip"]
    await app.tickets.add_entry(
        seed.customer, ticket.id, NewEntry(body="My LAWYER will call"), internal=False
    )
    await app.jobs.drain()
    after = await app.tickets.snapshot(ticket.id)
    assert after.priority == "high"
    assert after.tags == ["other", "vip", "legal"]


async def test_rules_run_in_order_and_disabled_rules_never_fire(app: App, seed: Seed) -> None:
    first = await app.automation.create(
        seed.admin,
        rule(
            name="first",
            events=["created"],
            actions=[{"type": "set_field", "field": "category", "value": "first"}],
        ),
    )
    second = await app.automation.create(
        seed.admin,
        rule(
            name="second",
            events=["created"],
            actions=[{"type": "set_field", "field": "category", "value": "second"}],
        ),
    )
    off = await app.automation.create(
        seed.admin,
        rule(
            name="off",
            enabled=False,
            actions=[{"type": "add_tags", "tags": ["never"]}],
        ),
    )
    ticket = await new_ticket(app)
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).category == "second"
    fired = [e.data["rule"] for e in await history(app, ticket.id) if e.kind == "automation_fired"]
    assert fired == ["first", "second"]

    await app.automation.reorder(seed.admin, Reorder(ids=[second.id, first.id, off.id]))
    await app.automation.set_enabled(seed.admin, second.id, False)
    ticket = await new_ticket(app)
    await app.jobs.drain()
    snapshot = await app.tickets.snapshot(ticket.id)
    assert snapshot.category == "first"
    assert snapshot.tags == []


async def test_a_failing_rule_is_rolled_back_and_recorded_once(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="reopen on update",
            events=["updated"],
            # "reopen" is not allowed from "new": the whole rule rolls back.
            actions=[
                {"type": "add_tags", "tags": ["half"]},
                {"type": "transition", "transition": "reopen"},
            ],
        ),
    )
    ticket = await new_ticket(app)
    await patch(app, ticket.id, subject="Changed")
    await app.jobs.drain()
    events = await history(app, ticket.id)
    failed = [e for e in events if e.kind == "automation_failed"]
    assert len(failed) == 1
    assert "cannot 'reopen'" in failed[0].data["error"]
    assert (await app.tickets.snapshot(ticket.id)).tags == []  # the first action rolled back
    assert await app.jobs.counts() == {
        "done": await app.db.fetchval("SELECT COUNT(*) AS n FROM job")
    }


async def test_only_admins_manage_rules_and_bad_rules_are_refused(app: App, seed: Seed) -> None:
    good = {"name": "r", "actions": [{"type": "add_tags", "tags": ["x"]}]}
    with pytest.raises(PermissionDenied):
        await app.automation.create(seed.agent, rule(**good))
    cases = [
        ({"conditions": [{"field": "colour", "op": "is", "value": "red"}]}, "conditions[0].field"),
        ({"conditions": [{"field": "channel", "op": "changed"}]}, "conditions[0].op"),
        (
            {"conditions": [{"field": "priority", "op": "is", "value": "urgent"}]},
            "conditions[0].value",
        ),
        (
            {"conditions": [{"field": "subject", "op": "matches", "value": "("}]},
            "conditions[0].value",
        ),
        ({"actions": [{"type": "transition", "transition": "fly"}]}, "actions[0].transition"),
        (
            {"actions": [{"type": "set_field", "field": "team", "value": "nope"}]},
            "actions[0].value",
        ),
        ({"actions": [{"type": "reply", "macro_id": 999}]}, "actions[0].macro_id"),
        ({"trigger": "time"}, "after_minutes"),
    ]
    for change, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            await app.automation.create(seed.admin, rule(**{**good, **change}))
        assert caught.value.field == field, (change, caught.value)
    await app.automation.create(seed.admin, rule(**good))
    with pytest.raises(ValidationFailed, match="exists"):
        await app.automation.create(seed.admin, rule(**good))


# --- exactly once, loops --------------------------------------------------------------------


async def test_a_rule_never_fires_twice_for_one_event_even_with_two_workers(
    app: App, seed: Seed, settings_factory: Callable[..., Any], clock: FrozenClock
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="count",
            events=["created"],
            actions=[
                {"type": "note", "body": "seen"},
                {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
            ],
        ),
    )
    other = create_helpdesk(settings_factory(), clock=clock)  # a second worker process
    await other.start()
    try:
        ticket = await new_ticket(app)
        [row] = await app.db.fetch("SELECT id, payload FROM job WHERE kind = 'automation'")
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        job = JobRecord(
            id=row["id"], kind="automation", payload=payload, attempts=1, max_attempts=8
        )
        # Both workers run the same job at once (as after an expired lease), then again.
        await asyncio.gather(run_events_job(app, job), run_events_job(other, job))
        await run_events_job(other, job)
        await app.jobs.drain()
    finally:
        await other.stop()
    events = await history(app, ticket.id)
    assert kinds(events).count("automation_fired") == 1
    assert kinds(events).count("note_added") == 1
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM automation_fired") == 1
    assert (
        await app.db.fetchval("SELECT COUNT(*) AS n FROM job WHERE kind = 'automation_webhook'")
        == 1
    )


async def test_loop_between_two_rules_is_stopped_and_recorded(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="A: normal means high",
            events=["updated"],
            conditions=[{"field": "priority", "op": "changed_to", "value": "normal"}],
            actions=[{"type": "set_field", "field": "priority", "value": "high"}],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="B: high means normal",
            events=["updated"],
            conditions=[{"field": "priority", "op": "changed_to", "value": "high"}],
            actions=[{"type": "set_field", "field": "priority", "value": "normal"}],
        ),
    )
    ticket = await new_ticket(app, priority=Priority.LOW)
    await patch(app, ticket.id, priority="normal")
    ran = await app.jobs.drain()
    assert ran < 20
    events = await history(app, ticket.id)
    fired = [e.data["rule"] for e in events if e.kind == "automation_fired"]
    assert fired == ["A: normal means high", "B: high means normal"]
    [stopped] = [e for e in events if e.kind == "automation_loop_stopped"]
    assert stopped.data["rule"] == "A: normal means high"
    assert stopped.data["chain"] == ["A: normal means high", "B: high means normal"]
    assert "loop" in stopped.data["reason"]
    origin = next(e for e in events if e.kind == "updated" and e.actor.name == "system")
    assert stopped.data["origin_event_id"] == origin.id
    assert (await app.tickets.snapshot(ticket.id)).priority == "normal"
    assert not await app.jobs.drain()  # nothing left running


async def test_chain_depth_is_capped(app: App, seed: Seed) -> None:
    app.automation.max_depth = 3
    for i in range(5):  # t0 -> t1 -> t2 -> t3 -> t4 -> t5: distinct rules, no cycle
        await app.automation.create(
            seed.admin,
            rule(
                name=f"step {i}",
                events=["updated"],
                conditions=[{"field": "tags", "op": "added", "value": f"t{i}"}],
                actions=[{"type": "add_tags", "tags": [f"t{i + 1}"]}],
            ),
        )
    ticket = await new_ticket(app)
    await patch(app, ticket.id, tags=["t0"])
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).tags == ["t0", "t1", "t2", "t3"]
    [stopped] = [e for e in await history(app, ticket.id) if e.kind == "automation_loop_stopped"]
    assert stopped.data["rule"] == "step 3"
    assert stopped.data["depth"] == 3
    assert "limit" in stopped.data["reason"]


# --- time rules -----------------------------------------------------------------------------


async def test_pending_customer_reminded_after_5_days_closed_after_7(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    macro = await app.macros.create(
        seed.admin,
        NewMacro(
            name="reminder", body="Hello {{ requester.name }}, any news on {{ ticket.subject }}?"
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="remind after 5 days",
            trigger="time",
            since="status",
            after_minutes=5 * 24 * 60,
            conditions=[{"field": "status", "op": "is", "value": "pending_customer"}],
            actions=[
                {"type": "reply", "macro_id": macro.id},
                {"type": "add_tags", "tags": ["reminded"]},
            ],
        ),
    )
    await app.automation.create(
        seed.admin,
        rule(
            name="close after 7 days",
            trigger="time",
            since="status",
            after_minutes=7 * 24 * 60,
            conditions=[{"field": "status", "op": "is", "value": "pending_customer"}],
            actions=[{"type": "transition", "transition": "close"}],
        ),
    )
    silent = await new_ticket(app, "Printer jam")
    answered = await new_ticket(app, "Scanner jam")
    for t in (silent, answered):
        await app.tickets.transition(
            SYSTEM, t.id, TransitionRequest(transition="wait_for_customer")
        )
    await app.jobs.drain()

    clock.advance(days=4, hours=23)
    await app.jobs.drain()
    assert "reminded" not in (await app.tickets.snapshot(silent.id)).tags
    # The customer of the second ticket answers on day 4: its clock is reset (status open).
    contact = Principal(
        id=seed.customer.id,
        name="Carol",
        email="carol@customer.test",
        role=seed.customer.role,
        contact_id=answered.requester.id,
    )
    await app.tickets.add_entry(contact, answered.id, NewEntry(body="here it is"), internal=False)
    await app.jobs.drain()

    clock.advance(hours=1)  # day 5
    await app.jobs.drain()
    reminded = await app.tickets.snapshot(silent.id)
    assert reminded.tags == ["reminded"]
    assert reminded.status == "pending_customer"
    replies = [e for e in await app.tickets.entries(SYSTEM, silent.id) if e.kind == "message_out"]
    assert [r.body_text for r in replies] == ["Hello Carol Customer, any news on Printer jam?"]
    assert replies[0].author.name == "rule 'remind after 5 days'"

    clock.advance(days=1, hours=23)  # day 6 and 23 hours: not yet
    await app.jobs.drain()
    assert (await app.tickets.snapshot(silent.id)).status == "pending_customer"
    clock.advance(hours=1)  # day 7
    await app.jobs.drain()
    assert (await app.tickets.snapshot(silent.id)).status == "closed"
    closed = [e for e in await history(app, silent.id) if e.kind == "status_changed"][-1]
    assert closed.actor.name == "rule 'close after 7 days'"
    assert closed.changes["status"].new == "closed"

    other = await app.tickets.snapshot(answered.id)
    assert other.status == "open"
    assert "reminded" not in other.tags
    timers = await app.db.fetch(
        "SELECT payload FROM job WHERE kind = 'automation_timer' ORDER BY id"
    )
    outcomes = sorted(
        (json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"])["outcome"]
        for r in timers
    )
    # Two fired on the silent ticket; the rest were superseded by a later status change
    # (timers anchored on creation, and the answered ticket's).
    assert outcomes == ["fired"] * 2 + ["superseded"] * (len(outcomes) - 2)


# --- webhooks --------------------------------------------------------------------------------


class HookServer:
    """A real local HTTP server answering 500 to the first ``failures`` POSTs, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                server.bodies.append(json.loads(self.rfile.read(length)))
                status = 500 if len(server.bodies) <= server.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer(failures=1)
    yield server
    server.close()


async def test_webhook_goes_through_the_outbox_and_is_retried(
    app: App, seed: Seed, clock: FrozenClock, hook_server: HookServer
) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="tell the ops bot",
            events=["created"],
            conditions=[{"field": "subject", "op": "contains", "value": "down"}],
            actions=[{"type": "webhook", "url": hook_server.url}],
        ),
    )
    ticket = await new_ticket(app, "Site down")
    await app.jobs.drain()
    assert len(hook_server.bodies) == 1  # failed: 500
    [job] = await app.db.fetch("SELECT status, attempts FROM job WHERE kind = 'automation_webhook'")
    assert (job["status"], job["attempts"]) == ("pending", 1)
    clock.advance(seconds=5)  # past the back-off
    await app.jobs.drain()
    [job] = await app.db.fetch("SELECT status, attempts FROM job WHERE kind = 'automation_webhook'")
    assert (job["status"], job["attempts"]) == ("done", 2)
    body = hook_server.bodies[-1]
    assert body["rule"]["name"] == "tell the ops bot"
    assert body["ticket"]["id"] == ticket.id
    assert body["event"]["kind"] == "created"


async def test_a_lengthened_time_rule_waits_for_its_new_delay(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    fields: dict[str, Any] = {
        "name": "close idle",
        "trigger": "time",
        "after_minutes": 60,
        "conditions": [{"field": "status", "op": "is", "value": "pending_customer"}],
        "actions": [{"type": "transition", "transition": "close"}],
    }
    made = await app.automation.create(seed.admin, rule(**fields))
    ticket = await new_ticket(app)
    await app.tickets.transition(
        SYSTEM, ticket.id, TransitionRequest(transition="wait_for_customer")
    )
    await app.jobs.drain()
    await app.automation.update(seed.admin, made.id, rule(**{**fields, "after_minutes": 120}))
    clock.advance(minutes=61)
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).status == "pending_customer"
    clock.advance(minutes=60)
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).status == "closed"


async def test_no_job_is_queued_for_events_no_rule_listens_to(app: App, seed: Seed) -> None:
    await app.automation.create(
        seed.admin,
        rule(
            name="on status only",
            events=["status_changed"],
            actions=[{"type": "add_tags", "tags": ["moved"]}],
        ),
    )
    ticket = await new_ticket(app)
    await patch(app, ticket.id, subject="Renamed")
    assert not await app.db.fetchval("SELECT COUNT(*) AS n FROM job WHERE kind = 'automation'")
    await app.tickets.transition(SYSTEM, ticket.id, TransitionRequest(transition="open"))
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM job WHERE kind = 'automation'") == 1
    await app.jobs.drain()
    assert (await app.tickets.snapshot(ticket.id)).tags == ["moved"]

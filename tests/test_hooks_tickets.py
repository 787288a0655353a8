"""Ticket hooks as the core calls them, on both engines: classify_ticket and enrich_ticket
at creation, route_ticket, ticket_pre_transition (veto), ticket_event (after commit, retried
per plugin), deliver_reply (agent replies) and notify (notification jobs).

Test plugins are plain objects with ``@hookimpl`` methods, registered through
``helpdesk_factory(extra_plugins=[(name, obj)])``; the job worker is driven by hand with
``helpdesk.jobs.drain()`` and the FrozenClock ``clock`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from ticketcore import (
    Actor,
    Classification,
    Entry,
    EntryKind,
    Notification,
    Priority,
    RouteDecision,
    RoutingContext,
    Status,
    Ticket,
    TicketEvent,
    hookimpl,
)
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewEntry, NewTicket, RequesterInput, TransitionRequest
from ticketcore.domain.models import Principal
from ticketcore.errors import TransitionVetoed
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
STAFF = Principal.system()


async def open_ticket(app: App, subject: str = "VPN down", **fields: Any) -> Ticket:
    """Create a ticket as staff, for carol@customer.test unless told otherwise."""
    fields.setdefault("requester", RequesterInput(email="carol@customer.test"))
    return await app.tickets.create(STAFF, NewTicket(subject=subject, body="help", **fields))


async def history(app: App, ticket_id: int) -> list[TicketEvent]:
    """The ticket's events, oldest first."""
    return await app.tickets.events(STAFF, ticket_id)


async def jobs(app: App) -> list[dict[str, Any]]:
    """Every job row, oldest first (payload decoded)."""
    rows = await app.db.fetch(
        "SELECT kind, status, attempts, payload, last_error FROM job ORDER BY id"
    )
    for row in rows:
        if isinstance(row["payload"], str):
            row["payload"] = msgspec.json.decode(row["payload"])
    return rows


# --- classify_ticket / enrich_ticket --------------------------------------------------------


class Classifier:
    """Answers a fixed classification; sees the ticket as the previous classifier left it."""

    def __init__(self, answer: Classification | None) -> None:
        self.answer = answer
        self.seen: list[Ticket] = []

    @hookimpl
    def classify_ticket(self, ticket: Ticket, context: dict[str, Any]) -> Classification | None:
        """Return the fixed answer."""
        self.seen.append(ticket)
        return self.answer


class Enricher:
    """Returns fixed data, sync or async, or fails."""

    def __init__(self, data: dict[str, Any] | None, *, is_async: bool, fail: bool = False) -> None:
        self.data = data
        self.is_async = is_async
        self.fail = fail

    def _answer(self) -> dict[str, Any] | None:
        if self.fail:
            raise ConnectionError("CRM unreachable")
        return self.data

    @hookimpl
    def enrich_ticket(self, ticket: Ticket) -> Any:
        """Look the requester up."""
        if not self.is_async:
            return self._answer()

        async def later() -> dict[str, Any] | None:
            await asyncio.sleep(0)
            return self._answer()

        return later()


async def test_classifiers_apply_in_call_order_and_are_recorded(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    first = Classifier(Classification(reason="mentions VPN", category="network", tags=["vpn"]))
    silent = Classifier(None)
    second = Classifier(
        Classification(
            reason="outage words", category="outage", priority=Priority.HIGH, tags=["vpn", "p1"]
        )
    )
    app = await helpdesk_factory(
        extra_plugins=[("first", first), ("silent", silent), ("second", second)]
    )

    ticket = await open_ticket(app)

    assert (ticket.category, ticket.priority, ticket.tags) == (
        "outage",
        Priority.HIGH,
        ["vpn", "p1"],
    )
    assert second.seen[0].category == "network", "a later classifier sees the earlier answer"
    stored = await app.tickets.snapshot(ticket.id)
    assert (stored.category, stored.priority, stored.tags) == (
        "outage",
        Priority.HIGH,
        ["vpn", "p1"],
    )
    classified = [e for e in await history(app, ticket.id) if e.kind == "classified"]
    assert [(e.data["plugin"], e.data["reason"]) for e in classified] == [
        ("first", "mentions VPN"),
        ("second", "outage words"),
    ]
    assert classified[1].changes["category"].old == "network"
    assert classified[1].changes["category"].new == "outage"
    assert classified[1].changes["priority"].new == "high"


async def test_enrichment_merges_data_raises_priority_and_isolates_failures(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(
        extra_plugins=[
            (
                "crm",
                Enricher({"crm_id": 42, "priority": "critical", "reason": "VIP"}, is_async=True),
            ),
            ("down", Enricher(None, is_async=True, fail=True)),
            ("lower", Enricher({"priority": "low", "region": "emea"}, is_async=False)),
            ("nothing", Enricher(None, is_async=False)),
        ]
    )

    ticket = await open_ticket(app)

    assert ticket.priority is Priority.CRITICAL, "enrichment raises, never lowers, priority"
    assert ticket.custom_fields == {"crm_id": 42, "region": "emea"}
    events = [e for e in await history(app, ticket.id) if e.kind != "created"]
    assert [(e.kind, e.data["plugin"]) for e in events] == [
        ("enriched", "crm"),
        ("enrichment_failed", "down"),
        ("enriched", "lower"),
    ]
    assert events[0].data["reason"] == "VIP"
    assert events[1].data["error"] == "ConnectionError: CRM unreachable"
    assert "priority" not in events[2].changes


# --- route_ticket ---------------------------------------------------------------------------


class Router:
    """Routes to a team slug and/or an agent chosen by a function of the context."""

    def __init__(
        self,
        reason: str,
        team: str | None = None,
        agent: Callable[[RoutingContext, int], int | None] | None = None,
        *,
        final: bool = False,
    ) -> None:
        self.reason = reason
        self.team = team
        self.agent = agent
        self.final = final
        self.calls = 0

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Decide from the snapshot only."""
        self.calls += 1
        team_id = context.team_slugs.get(self.team, -1) if self.team else ticket.team_id
        agent = self.agent(context, team_id) if self.agent and team_id else None
        return RouteDecision(
            reason=self.reason,
            team_id=team_id if self.team else None,
            assignee_id=agent,
            final=self.final,
        )


def second_agent(context: RoutingContext, team_id: int) -> int:
    """The last agent of the team."""
    return context.teams[team_id].agents[-1].id


async def test_routing_chain_records_each_decision_and_stops_at_an_assignee(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    typo = Router("team that does not exist", team="suport")
    team = Router("support owns VPN", team="support")
    agent = Router("last agent of the team", agent=second_agent)
    never = Router("never asked", team="support")
    app = await helpdesk_factory(
        extra_plugins=[("typo", typo), ("team", team), ("agent", agent), ("never", never)]
    )
    seed = await seed_helpdesk(app)

    ticket = await open_ticket(app)

    assert (ticket.team_id, ticket.assignee_id) == (seed.team_id, seed.agent2.id)
    assert never.calls == 0
    events = [e for e in await history(app, ticket.id) if e.kind != "created"]
    assert [(e.kind, e.data["plugin"], e.data["reason"]) for e in events] == [
        ("routing_rejected", "typo", "team that does not exist"),
        ("routed", "team", "support owns VPN"),
        ("routed", "agent", "last agent of the team"),
    ]
    assert events[0].data["problem"] == "team -1 does not exist"


async def test_final_decision_stops_the_chain_and_explicit_assignee_skips_it(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    final = Router("team only, final", team="support", final=True)
    later = Router("never asked", agent=second_agent)
    app = await helpdesk_factory(extra_plugins=[("final", final), ("later", later)])
    seed = await seed_helpdesk(app)

    routed = await open_ticket(app)
    assigned = await open_ticket(app, team_id=seed.team_id, assignee_id=seed.agent.id)

    assert (routed.team_id, routed.assignee_id) == (seed.team_id, None)
    assert (assigned.team_id, assigned.assignee_id) == (seed.team_id, seed.agent.id)
    assert (final.calls, later.calls) == (1, 0), "a ticket created with an agent is not routed"


# --- ticket_pre_transition ------------------------------------------------------------------


class NoResolveWithoutReply:
    """Vetoes resolving a ticket nobody answered yet."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def ticket_pre_transition(self, ticket: Ticket, transition: str, actor: Actor) -> str | None:
        """Refuse ``resolve`` before the first response."""
        self.asked.append((transition, actor.kind))
        if transition == "resolve" and ticket.first_response_at is None:
            return "nobody has answered the customer yet"
        return None


async def test_transition_veto_is_a_409_and_changes_nothing(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    guard = NoResolveWithoutReply()
    app = await helpdesk_factory(extra_plugins=[("guard", guard)])
    seed = await seed_helpdesk(app)
    ticket = await open_ticket(app)

    async with api_client(app) as client:
        vetoed = await client.post(
            f"/api/v1/tickets/{ticket.id}/transitions",
            headers=seed.headers("agent"),
            json={"transition": "resolve"},
        )
        allowed = await client.post(
            f"/api/v1/tickets/{ticket.id}/transitions",
            headers=seed.headers("agent"),
            json={"transition": "hold"},
        )

    assert vetoed.status_code == 409, vetoed.text
    body = vetoed.json()
    assert body["error"] == "transition_vetoed"
    assert body["message"] == "guard refused 'resolve': nobody has answered the customer yet"
    assert body["detail"] == {"plugin": "guard"}
    assert allowed.status_code == 200 and allowed.json()["status"] == "on_hold"
    assert guard.asked == [("resolve", "user"), ("hold", "user")]
    kinds = [e.kind for e in await history(app, ticket.id)]
    assert kinds == ["created", "status_changed"], "the vetoed transition left no trace"

    with pytest.raises(TransitionVetoed):
        await app.tickets.transition(seed.agent, ticket.id, TransitionRequest(transition="resolve"))


# --- ticket_event ---------------------------------------------------------------------------


class EventSink:
    """Receives committed events; can fail the first ``failures`` deliveries."""

    def __init__(self, *, failures: int = 0, is_async: bool = True) -> None:
        self.failures = failures
        self.is_async = is_async
        self.received: list[tuple[int, str, Status]] = []

    def _take(self, event: TicketEvent, ticket: Ticket) -> None:
        self.received.append((event.id, event.kind, ticket.status))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("webhook endpoint answered 503")

    @hookimpl
    def ticket_event(self, event: TicketEvent, ticket: Ticket) -> Any:
        """Take one event."""
        if not self.is_async:
            self._take(event, ticket)
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            self._take(event, ticket)

        return later()


async def test_ticket_events_are_delivered_after_commit_once_per_plugin(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    sync_sink, async_sink = EventSink(is_async=False), EventSink()
    app = await helpdesk_factory(extra_plugins=[("sync", sync_sink), ("async", async_sink)])

    ticket = await open_ticket(app)
    assert sync_sink.received == [] and async_sink.received == [], "delivered by the worker"
    await app.tickets.transition(STAFF, ticket.id, TransitionRequest(transition="hold"))
    await app.jobs.drain()
    await app.jobs.drain()

    ids = [e.id for e in await history(app, ticket.id)]
    expected = [(ids[0], "created", Status.ON_HOLD), (ids[1], "status_changed", Status.ON_HOLD)]
    assert sync_sink.received == expected
    assert async_sink.received == expected
    assert [j["status"] for j in await jobs(app)] == ["done", "done"]


async def test_failed_event_delivery_is_retried_only_for_the_failing_plugin(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    good, flaky = EventSink(), EventSink(failures=1)
    app = await helpdesk_factory(extra_plugins=[("good", good), ("flaky", flaky)])

    ticket = await open_ticket(app)
    await app.jobs.drain()

    (event_id,) = [e.id for e in await history(app, ticket.id)]
    assert good.received == flaky.received == [(event_id, "created", Status.NEW)]
    (job,) = await jobs(app)
    assert (job["status"], job["attempts"], job["payload"]["done"]) == ("pending", 1, ["good"])
    assert "flaky: RuntimeError: webhook endpoint answered 503" in job["last_error"]

    assert await app.jobs.drain() == 0, "not due before the back-off"
    clock.advance(seconds=10)
    assert await app.jobs.drain() == 1

    assert len(good.received) == 1, "the plugin that succeeded is not called again"
    assert len(flaky.received) == 2
    (job,) = await jobs(app)
    assert (job["status"], job["attempts"]) == ("done", 2)
    assert job["payload"]["done"] == ["flaky", "good"]


async def test_rolled_back_change_delivers_no_event(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    sink = EventSink()
    app = await helpdesk_factory(extra_plugins=[("sink", sink), ("guard", NoResolveWithoutReply())])
    ticket = await open_ticket(app)

    with pytest.raises(TransitionVetoed):
        await app.tickets.transition(STAFF, ticket.id, TransitionRequest(transition="resolve"))
    await app.jobs.drain()

    assert [kind for _, kind, _ in sink.received] == ["created"]


# --- deliver_reply --------------------------------------------------------------------------


class Channel:
    """Owns one channel: sends replies on it (returns True), ignores the others (None)."""

    def __init__(self, channel: str, *, is_async: bool) -> None:
        self.channel = channel
        self.is_async = is_async
        self.asked: list[str] = []
        self.sent: list[tuple[int, str, EntryKind]] = []

    def _send(self, ticket: Ticket, reply: Entry, channel: str) -> bool | None:
        self.asked.append(channel)
        if channel != self.channel:
            return None
        self.sent.append((ticket.id, reply.body_text, reply.kind))
        return True

    @hookimpl
    def deliver_reply(self, ticket: Ticket, reply: Entry, channel: str) -> Any:
        """Send if the channel is ours."""
        if not self.is_async:
            return self._send(ticket, reply, channel)

        async def later() -> bool | None:
            await asyncio.sleep(0)
            return self._send(ticket, reply, channel)

        return later()


async def test_agent_reply_is_delivered_by_the_channel_that_owns_it(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    chat = Channel("chat", is_async=False)
    email = Channel("email", is_async=True)
    also_email = Channel("email", is_async=False)
    app = await helpdesk_factory(
        extra_plugins=[("chat", chat), ("email", email), ("also_email", also_email)]
    )
    seed = await seed_helpdesk(app)
    ticket = await open_ticket(app, channel="email")

    await app.tickets.add_entry(
        seed.agent, ticket.id, NewEntry(body="Try again now"), internal=False
    )
    await app.tickets.add_entry(seed.agent, ticket.id, NewEntry(body="internal"), internal=True)
    await app.tickets.add_entry(seed.customer, ticket.id, NewEntry(body="thanks"), internal=False)
    await app.jobs.drain()

    assert email.sent == [(ticket.id, "Try again now", EntryKind.MESSAGE_OUT)]
    assert chat.asked == ["email"] and chat.sent == []
    assert also_email.asked == [], "the first channel that sent stops the walk"
    (job,) = await jobs(app)
    assert job["kind"] == "deliver_reply" and job["status"] == "done"
    assert job["payload"]["delivered_by_channel"] is True


async def test_reply_on_a_channel_nobody_owns_is_marked_undelivered(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    chat = Channel("chat", is_async=True)
    app = await helpdesk_factory(extra_plugins=[("chat", chat)])
    seed = await seed_helpdesk(app)
    ticket = await open_ticket(app, channel="phone")

    await app.tickets.add_entry(seed.agent, ticket.id, NewEntry(body="Called you"), internal=False)
    await app.jobs.drain()

    assert chat.asked == ["phone"] and chat.sent == []
    (job,) = await jobs(app)
    assert (job["status"], job["payload"]["delivered_by_channel"]) == ("done", False)


# --- notify ---------------------------------------------------------------------------------


class Notifier:
    """Delivers notifications on its transport; can fail the first ``failures`` times."""

    def __init__(self, *, failures: int = 0, is_async: bool = True) -> None:
        self.failures = failures
        self.is_async = is_async
        self.got: list[Notification] = []

    def _deliver(self, notification: Notification) -> None:
        self.got.append(notification)
        if self.failures:
            self.failures -= 1
            raise TimeoutError("SMTP server timed out")

    @hookimpl
    def notify(self, notification: Notification) -> Any:
        """Deliver one notification."""
        if not self.is_async:
            self._deliver(notification)
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            self._deliver(notification)

        return later()


async def test_notifications_reach_every_notifier_and_failures_are_retried_alone(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    mail, chat, pager = Notifier(failures=1), Notifier(is_async=False), Notifier()
    app = await helpdesk_factory(extra_plugins=[("mail", mail), ("chat", chat), ("pager", pager)])
    note = Notification(
        kind="sla_warning",
        ticket_id=None,
        recipients=["oncall@example.org"],
        subject="SLA at risk",
        body="Ticket #1 is due in 10 minutes",
        idempotency_key="sla_warning:1",
        data={"minutes": 10},
    )

    async with app.db.transaction():
        await app.jobs.enqueue(
            "notify", {"notification": msgspec.to_builtins(note)}, key=note.idempotency_key
        )
    await app.jobs.drain()

    assert chat.got == [note] and pager.got == [note]
    assert mail.got == [note]
    (job,) = await jobs(app)
    assert (job["status"], job["payload"]["done"]) == ("pending", ["chat", "pager"])
    assert "mail: TimeoutError: SMTP server timed out" in job["last_error"]

    clock.advance(minutes=1)
    await app.jobs.drain()

    assert mail.got == [note, note]
    assert chat.got == [note] and pager.got == [note], "the others are not notified twice"
    (job,) = await jobs(app)
    assert job["status"] == "done"

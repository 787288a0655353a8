"""Running automation rules in the worker, after commit (a new ticket's rules that only
set tags, priority or category, or notify, already ran as it was written:
:mod:`ticketcore.services.automation_inline`).

- ``automation`` jobs (one per write, from the outbox) evaluate the event rules on the
  events of that write, in rule order, and schedule the timers of time rules;
- ``automation_timer`` jobs (one per time rule and anchor event, due ``after_minutes``
  later) fire a time rule if its anchor is still the latest and the ticket still matches;
- ``automation_webhook`` jobs call webhooks, retried with back-off.

Each firing is one transaction: a unique ``automation_fired`` row for (rule, event), the
actions, and an ``automation_fired`` history event. A second worker (or a retry) finds the
row and does nothing, so a rule never fires twice for one event. A rule that fails (an
invalid transition, say) is rolled back and recorded as ``automation_failed`` once.

Loops: the events a rule's actions record carry the chain that led to them (origin event,
depth, the rules fired). A rule already in its event's chain, or a chain at
``AutomationService.max_depth``, is not fired: ``automation_loop_stopped`` is recorded.
"""

from __future__ import annotations

import logging
from contextvars import Token
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ticketcore.domain.automation import (
    OWN_EVENT_KINDS,
    SINCE_EVENT_KINDS,
    CompiledRule,
    Facts,
    Rule,
)
from ticketcore.domain.models import Actor, Ticket, TicketEvent
from ticketcore.errors import TicketCoreError, VersionConflict
from ticketcore.services.automation_actions import apply_actions, deliver_webhook
from ticketcore.services.automation_chain import CURRENT_CHAIN, Chain
from ticketcore.services.history import EventDraft, record_events
from ticketcore.services.rows import TICKET_COLUMNS, TICKET_FROM, event_from_row, ticket_from_row

if TYPE_CHECKING:
    from ticketcore.app import App
    from ticketcore.jobs import JobHandler, JobRecord

log = logging.getLogger("ticketcore.automation")
AUTOMATION_ACTOR = Actor.system("automation")


def automation_job_handlers() -> dict[str, JobHandler]:
    """The job kinds of the automation."""
    return {
        "automation": run_events_job,
        "automation_timer": run_timer_job,
        "automation_webhook": deliver_webhook,
    }


async def _tickets(app: App, ids: list[int], *, lock: bool = False) -> dict[int, Ticket]:
    """Snapshots of several tickets in one query (without links: rules do not look at
    them); ``lock`` takes their rows for the transaction on PostgreSQL (on SQLite the one
    writer already serialises)."""
    marks = ", ".join(["{}"] * len(ids))
    suffix = " FOR UPDATE OF t" if lock and not app.db.is_sqlite else ""
    rows = await app.db.fetch(
        f"SELECT {TICKET_COLUMNS}, t.description {TICKET_FROM} WHERE t.id IN ({marks}){suffix}",
        *ids,
    )
    return {r["id"]: ticket_from_row(r, [], description=r["description"] or "") for r in rows}


async def _message(app: App, event: TicketEvent) -> str:
    entry_id = event.data.get("entry_id")
    if entry_id is None:
        return ""
    return str(await app.db.fetchval("SELECT body_text FROM entry WHERE id = {}", entry_id) or "")


_EVENT_FIELDS = (
    "id",
    "ticket",
    "kind",
    "actor_kind",
    "actor_id",
    "actor_name",
    "changes",
    "data",
    "created_at",
)
#: The events of a job with their tickets, in one round trip (the events' columns as e_*).
_EVENTS_WITH_TICKETS = (
    f"SELECT {', '.join(f'e.{c} AS e_{c}' for c in _EVENT_FIELDS)}, {TICKET_COLUMNS}, "
    f"t.description {TICKET_FROM} JOIN ticket_event e ON e.ticket = t.id WHERE e.id IN "
)


async def _events_with_tickets(
    app: App, ids: list[int]
) -> tuple[list[TicketEvent], dict[int, Ticket]]:
    """The events ``ids`` (but the automation's own), in order, and their tickets as they
    are now (without links); events of deleted tickets are left out."""
    marks = ", ".join(["{}"] * len(ids))
    rows = await app.db.fetch(f"{_EVENTS_WITH_TICKETS}({marks}) ORDER BY e.id", *ids)
    events: list[TicketEvent] = []
    snapshots: dict[int, Ticket] = {}
    for row in rows:
        if row["e_kind"] in OWN_EVENT_KINDS:
            continue
        events.append(event_from_row({c: row[f"e_{c}"] for c in _EVENT_FIELDS}))
        if row["id"] not in snapshots:
            snapshots[row["id"]] = ticket_from_row(row, [], description=row["description"] or "")
    return events, snapshots


async def run_events_job(app: App, job: JobRecord) -> None:
    """Job ``automation``: evaluate the rules on the events of one write, in order."""
    rules = await app.automation.rule_set()
    if rules.empty:
        return
    events, snapshots = await _events_with_tickets(app, [int(i) for i in job.payload["events"]])
    if not events:
        return
    chain = Chain.from_payload(job.payload)
    stale: set[int] = set()  # tickets a rule changed and that must be read again

    async def current(ticket_id: int) -> Ticket | None:
        if ticket_id in stale:
            stale.discard(ticket_id)
            snapshots.update(await _tickets(app, [ticket_id]))
        return snapshots.get(ticket_id)

    for event in events:
        message: str | None = None
        for compiled in rules.for_event(event.kind):
            ticket = await current(event.ticket_id)
            if ticket is None:
                break  # deleted meanwhile
            if compiled.needs_message and message is None:
                message = await _message(app, event)
            if not compiled.matches(Facts(ticket=ticket, event=event, message=message or "")):
                continue
            fired, after = await _fire(app, compiled, ticket.id, event, chain, with_event=True)
            if fired:
                if after is None:
                    stale.add(ticket.id)
                else:  # as the actions left it: no need to read it again
                    snapshots[ticket.id] = after
        anchored = [c for c in rules.time_rules if event.kind in SINCE_EVENT_KINDS[c.rule.since]]
        ticket = await current(event.ticket_id) if anchored else None
        if ticket is not None:
            await _schedule_timers(app, anchored, ticket, event)


async def _schedule_timers(
    app: App, time_rules: list[CompiledRule], ticket: Ticket, event: TicketEvent
) -> None:
    """Start the timers of ``time_rules`` (those this event is an anchor for) whose
    conditions hold now; they are checked again when the timer is due."""
    due: list[tuple[CompiledRule, Any]] = []
    for compiled in time_rules:
        rule = compiled.rule
        if not compiled.matches(Facts(ticket=ticket)):
            continue
        due.append((compiled, event.created_at + timedelta(minutes=rule.after_minutes or 0)))
    if not due:
        return
    async with app.db.transaction():
        for compiled, run_at in due:
            await app.jobs.enqueue(
                "automation_timer",
                {"rule": compiled.rule.id, "ticket": ticket.id, "anchor": event.id},
                run_at=run_at,
                key=f"automation_timer:{compiled.rule.id}:{event.id}",
            )
    app.jobs.wake()


async def run_timer_job(app: App, job: JobRecord) -> None:
    """Job ``automation_timer``: fire a time rule if its anchor event is still the
    latest of its kind on the ticket (e.g. the status has not changed since) and the
    ticket still matches."""
    rule_id, ticket_id, anchor = job.payload["rule"], job.payload["ticket"], job.payload["anchor"]
    compiled = (await app.automation.rule_set()).by_id.get(rule_id)
    if compiled is None or compiled.rule.trigger != "time":
        job.payload["outcome"] = "rule gone or disabled"
        return
    kinds = sorted(SINCE_EVENT_KINDS[compiled.rule.since])
    marks = ", ".join(["{}"] * len(kinds))
    latest = await app.db.fetchval(
        f"SELECT id FROM ticket_event WHERE ticket = {{}} AND kind IN ({marks}) "
        "ORDER BY id DESC LIMIT 1",
        ticket_id,
        *kinds,
    )
    if latest != anchor:
        job.payload["outcome"] = "superseded"
        return
    event = await app.tickets.event(anchor)
    after = compiled.rule.after_minutes or 0
    due = event.created_at + timedelta(minutes=after)
    if app.clock.now() < due:  # the rule was edited to wait longer: wait for the new time
        async with app.db.transaction():
            await app.jobs.enqueue(
                "automation_timer",
                {"rule": rule_id, "ticket": ticket_id, "anchor": anchor},
                run_at=due,
                key=f"automation_timer:{rule_id}:{anchor}:{after}",
            )
        job.payload["outcome"] = "rescheduled"
        return
    fired = await fire(app, compiled, ticket_id, event, Chain(), with_event=False)
    job.payload["outcome"] = "fired" if fired else "not fired"


async def _claim(app: App, rule_id: int, event_id: int, ticket_id: int, outcome: str) -> bool:
    """Record that ``rule_id`` handled ``event_id`` (in the caller's transaction); False if
    it already had (another worker, an earlier attempt)."""
    rows = await app.db.fetch(
        "INSERT INTO automation_fired (rule, event, ticket, outcome, fired_at) "
        "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (rule, event) DO NOTHING RETURNING id",
        rule_id,
        event_id,
        ticket_id,
        outcome,
        app.clock.now(),
    )
    return bool(rows)


async def fire(
    app: App,
    compiled: CompiledRule,
    ticket_id: int,
    event: TicketEvent,
    chain: Chain,
    *,
    with_event: bool,
) -> bool:
    """Fire one rule for one event (or a time rule for its anchor) unless it already did,
    it no longer matches, or the loop guard stops it; True if its actions ran."""
    fired, _ = await _fire(app, compiled, ticket_id, event, chain, with_event=with_event)
    return fired


async def _fire(
    app: App,
    compiled: CompiledRule,
    ticket_id: int,
    event: TicketEvent,
    chain: Chain,
    *,
    with_event: bool,
) -> tuple[bool, Ticket | None]:
    """:func:`fire`, also returning the ticket as the actions left it when known."""
    rule = compiled.rule
    after: Ticket | None = None
    if rule.id in chain.path or chain.depth >= app.automation.max_depth:
        await _stop_loop(app, rule, ticket_id, event, chain)
        return False, None
    token: Token[Chain | None] | None = CURRENT_CHAIN.set(chain.after(event.id, rule.id))
    try:
        async with app.db.transaction():
            ticket = (await _tickets(app, [ticket_id], lock=True)).get(ticket_id)
            if ticket is None:
                return False, None
            message = await _message(app, event) if compiled.needs_message else ""
            facts = Facts(ticket=ticket, event=event if with_event else None, message=message)
            if not compiled.matches(facts):
                return False, None  # changed since the job's snapshot
            if not await _claim(app, rule.id, event.id, ticket_id, "fired"):
                return False, None
            done, after = await apply_actions(app, rule, ticket, event)
            await record_events(
                app,
                ticket_id,
                Actor.system(f"rule {rule.name!r}"),
                [
                    EventDraft(
                        kind="automation_fired",
                        data={
                            "rule_id": rule.id,
                            "rule": rule.name,
                            "trigger": rule.trigger,
                            "event_id": event.id,
                            "event_kind": event.kind,
                            "actions": done,
                            "reason": f"rule {rule.name!r} matched {event.kind} (event {event.id})",
                        },
                    )
                ],
                app.clock.now(),
            )
    except VersionConflict:
        raise  # a concurrent change: let the job retry
    except TicketCoreError as exc:
        if token is not None:
            CURRENT_CHAIN.reset(token)
        token = None
        await _record_failure(app, rule, ticket_id, event, exc)
        return False, None
    finally:
        if token is not None:
            CURRENT_CHAIN.reset(token)
    app.jobs.wake()
    return True, after


async def _record_once(
    app: App,
    rule: Rule,
    event: TicketEvent,
    ticket_id: int,
    outcome: str,
    kind: str,
    data: dict[str, Any],
) -> None:
    """Claim (rule, event) with ``outcome`` and, if this worker got it, record one history
    event of ``kind``: a second worker, or a rerun, records nothing."""
    async with app.db.transaction():
        if await _claim(app, rule.id, event.id, ticket_id, outcome):
            draft = EventDraft(
                kind=kind,
                data={"rule_id": rule.id, "rule": rule.name, "event_id": event.id, **data},
            )
            await record_events(app, ticket_id, AUTOMATION_ACTOR, [draft], app.clock.now())


async def _record_failure(
    app: App, rule: Rule, ticket_id: int, event: TicketEvent, exc: TicketCoreError
) -> None:
    log.warning("automation rule %r failed on event %s: %s", rule.name, event.id, exc)
    await _record_once(
        app, rule, event, ticket_id, "failed", "automation_failed",
        {"error": str(exc), "field": exc.field},
    )  # fmt: skip


async def _stop_loop(
    app: App, rule: Rule, ticket_id: int, event: TicketEvent, chain: Chain
) -> None:
    """Record, once, that the loop guard kept ``rule`` from firing on ``event``."""
    names = {c.rule.id: c.rule.name for c in (await app.automation.rule_set()).by_id.values()}
    path = [names.get(i, f"#{i}") for i in chain.path]
    if rule.id in chain.path:
        reason = f"loop: rule {rule.name!r} already fired in this chain ({' -> '.join(path)})"
    else:
        reason = f"chain of {chain.depth} rules reached the limit ({app.automation.max_depth})"
    await _record_once(
        app, rule, event, ticket_id, "loop_stopped", "automation_loop_stopped",
        {"origin_event_id": chain.origin, "depth": chain.depth, "chain": path, "reason": reason},
    )  # fmt: skip

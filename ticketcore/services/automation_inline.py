"""Automation rules on a new ticket, evaluated while it is written.

A new ticket's first events (``created``, triage, SLA, routing) are known before its row is
written, and matching a rule is a pure function of the ticket and the event. So the batch
writer evaluates the event rules on them in memory, inside the creating transaction, the
way the worker would after commit (see :mod:`ticketcore.services.automation_engine`): rule
order, each event in turn, the events a rule's changes record evaluated after them, the
loop guard's chain. What fired is written with the ticket: the row already carries the
rules' changes, the history gets each change (an ``updated`` event by the rule) and an
``automation_fired`` event, ``automation_fired`` gets its (rule, event) claim, and the
timers of time rules anchored on these events are queued. No ``automation`` job is queued
for these events, so they are evaluated once; a rolled-back creation leaves nothing.

This only covers rules whose actions change what the writer stores anyway (tags, priority,
category) or only queue an outbox job (``notify``: the same notification job the worker
would queue, rendered from the ticket as the rule's earlier actions left it). When a
matching rule does anything else (assign, transition, reply, note, webhook), when the loop
guard would stop a rule, when an action is refused, or when a priority or category change
would need the SLA policy again, :func:`evaluate_new_ticket` returns None and the ticket's
events go to the worker exactly as other writes' do: same outcome, one place for the other
side effects and for recording failures and stopped loops.

Why bother: a ticket whose rules all miss then costs no job at all, and one whose rule tags
it costs one statement more in its own transaction instead of a job, a claim, a second
transaction and a follow-up job (issue #4's 2 ms budget on PostgreSQL).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import replace

from ticketcore.domain.automation import (
    OWN_EVENT_KINDS,
    SINCE_EVENT_KINDS,
    AddTags,
    CompiledRule,
    Facts,
    Notify,
    RemoveTags,
    Rule,
    SetField,
)
from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Actor, FieldChange, Ticket, TicketEvent
from ticketcore.domain.tags import clean_tags
from ticketcore.errors import ValidationFailed
from ticketcore.services.automation_actions import notify_job, rule_principal, tags_after
from ticketcore.services.automation_chain import Chain
from ticketcore.services.history import EventDraft, record_events_many
from ticketcore.services.macros import render_body

if TYPE_CHECKING:
    from ticketcore.app import App
    from ticketcore.services.automation import RuleSet

#: Fields a ``set_field`` action may change here (team and assignee need lookups).
_INLINE_FIELDS = frozenset({"priority", "category"})
#: Changes that make the SLA policy compute again: left to the worker's update path.
_SLA_FIELDS = frozenset({"priority", "category"})


class InlineFiring(msgspec.Struct, frozen=True, kw_only=True):
    """One rule that fired on one of the new ticket's events."""

    rule: Rule
    #: The event it fired on: an index into :attr:`InlineOutcome.events`.
    trigger: int
    #: What its actions did, as the history describes them.
    actions: list[str]
    #: Its ``notify`` actions: (place in the rule's actions, the action, the ticket as the
    #: rule's earlier actions left it), queued once the ids are known.
    notices: list[tuple[int, Notify, Ticket]] = []


class InlineOutcome(msgspec.Struct, kw_only=True):
    """A new ticket after its rules: what the writer stores and records."""

    ticket: Ticket
    #: Every event to record, in order: the write's own, then each rule's changes.
    events: list[tuple[Actor, EventDraft]]
    firings: list[InlineFiring]
    #: Timers to start: (time rule, index of its anchor event in :attr:`events`).
    timers: list[tuple[CompiledRule, int]]


def evaluate_new_ticket(
    rules: RuleSet,
    ticket: Ticket,
    actor: Actor,
    drafts: list[EventDraft],
    now: datetime,
    *,
    max_depth: int,
    sla_enabled: bool,
) -> InlineOutcome | None:
    """Run the event rules on a new ticket's events (recorded by ``actor``) as the worker
    would; None when the worker must do it (see the module docstring)."""
    events: list[tuple[Actor, EventDraft]] = [(actor, draft) for draft in drafts]
    outcome = InlineOutcome(ticket=ticket, events=events, firings=[], timers=[])
    if rules.empty or not rules.listens([d.kind for d in drafts]):
        return outcome
    queue: deque[tuple[int, Chain]] = deque((i, Chain()) for i in range(len(drafts)))
    while queue:
        index, chain = queue.popleft()
        event_actor, draft = events[index]
        if draft.kind in OWN_EVENT_KINDS:
            continue
        event = _event(draft, event_actor, now)
        for compiled in rules.for_event(draft.kind):
            if not compiled.matches(Facts(ticket=outcome.ticket, event=event)):
                continue
            rule = compiled.rule
            if rule.id in chain.path or chain.depth >= max_depth:
                return None  # the worker records the stopped loop
            applied = _apply(rule, outcome.ticket, sla_enabled)
            if applied is None:
                return None
            outcome.ticket, changes, done, notices = applied
            follows = chain.after(index, rule.id)
            rule_actor = Actor.system(f"rule {rule.name!r}")
            for change in changes:
                events.append((rule_actor, EventDraft(kind="updated", changes=change)))
                queue.append((len(events) - 1, follows))
            outcome.firings.append(
                InlineFiring(rule=rule, trigger=index, actions=done, notices=notices)
            )
        for compiled in rules.time_rules:
            if draft.kind in SINCE_EVENT_KINDS[compiled.rule.since] and compiled.matches(
                Facts(ticket=outcome.ticket)
            ):
                outcome.timers.append((compiled, index))
    return outcome


def _event(draft: EventDraft, actor: Actor, now: datetime) -> TicketEvent:
    """The event as the worker would read it back (not yet written: no id)."""
    return TicketEvent(
        id=0,
        ticket_id=0,
        kind=draft.kind,
        actor=actor,
        created_at=now,
        changes={k: FieldChange(old, new) for k, (old, new) in draft.changes.items()},
        data=draft.data,
    )


Changes = dict[str, tuple[Any, Any]]


Notices = list[tuple[int, Notify, Ticket]]


def _apply(
    rule: Rule, ticket: Ticket, sla_enabled: bool
) -> tuple[Ticket, list[Changes], list[str], Notices] | None:
    """A rule's actions on the draft, each recorded as its own change like the ticket
    services' updates; None when one of them is not for this path."""
    current = ticket
    changes: list[Changes] = []
    done: list[str] = []
    notices: Notices = []
    for i, action in enumerate(rule.actions):
        change: Changes = {}
        if isinstance(action, AddTags | RemoveTags):
            tags, description = tags_after(action, current.tags)
            try:
                tags = clean_tags(tags)
            except ValidationFailed:
                return None  # the worker records the failure
            if tags != current.tags:
                change["tags"] = (current.tags, tags)
                current = msgspec.structs.replace(current, tags=tags)
            done.append(description)
        elif isinstance(action, SetField) and action.field in _INLINE_FIELDS:
            if sla_enabled and action.field in _SLA_FIELDS:
                return None
            if action.field == "priority":
                try:
                    priority = Priority(str(action.value))
                except ValueError:
                    return None
                if priority is not current.priority:
                    change["priority"] = (current.priority.value, priority.value)
                    current = msgspec.structs.replace(current, priority=priority)
            else:
                category = None if action.value is None else str(action.value)
                if category != current.category:
                    change["category"] = (current.category, category)
                    current = msgspec.structs.replace(current, category=category)
            done.append(f"set {action.field} to {action.value!r}")
        elif isinstance(action, Notify):
            try:  # a text that cannot be rendered is the worker's to record as a failure
                _render(rule, action, current)
            except ValidationFailed:
                return None
            notices.append((i, action, current))
            done.append(f"notify {', '.join(action.to)}")
        else:
            return None
        if change:
            changes.append(change)
    return current, changes, done, notices


def _render(rule: Rule, action: Notify, ticket: Ticket) -> tuple[str, str]:
    """The subject and body of a ``notify`` action, as the worker renders them."""
    agent = rule_principal(rule)
    return render_body(action.subject, ticket, agent), render_body(action.body, ticket, agent)


def fired_event(firing: InlineFiring, trigger: EventDraft, trigger_id: int) -> EventDraft:
    """The ``automation_fired`` history event of an inline firing, as the worker writes it."""
    rule = firing.rule
    return EventDraft(
        kind="automation_fired",
        data={
            "rule_id": rule.id,
            "rule": rule.name,
            "trigger": rule.trigger,
            "event_id": trigger_id,
            "event_kind": trigger.kind,
            "actions": firing.actions,
            "reason": f"rule {rule.name!r} matched {trigger.kind} (event {trigger_id})",
        },
    )


async def record_inline(
    app: App, outcomes: list[tuple[int, InlineOutcome, list[int]]], now: datetime
) -> None:
    """Write what the rules did to new tickets (``(ticket id, outcome, ids of its recorded
    events)``) in the creating transaction: the ``automation_fired`` events with their
    (rule, event) claims, and the timers of time rules."""
    claims: list[Any] = []
    fired: list[tuple[int, Actor, list[EventDraft]]] = []
    timers: dict[datetime, list[tuple[dict[str, Any], str | None]]] = {}
    notices: list[tuple[str, Rule, Notify, Ticket]] = []
    for ticket_id, outcome, ids in outcomes:
        for firing in outcome.firings:
            trigger_id = ids[firing.trigger]
            for i, action, ticket in firing.notices:
                key = f"automation:{firing.rule.id}:{trigger_id}:{i}"
                notices.append((key, firing.rule, action, replace(ticket, id=ticket_id)))
            claims += [firing.rule.id, trigger_id, ticket_id, "fired", now]
            trigger = outcome.events[firing.trigger][1]
            actor = Actor.system(f"rule {firing.rule.name!r}")
            fired.append((ticket_id, actor, [fired_event(firing, trigger, trigger_id)]))
        for compiled, anchor in outcome.timers:
            rule = compiled.rule
            run_at = now + timedelta(minutes=rule.after_minutes or 0)
            timers.setdefault(run_at, []).append(
                (
                    {"rule": rule.id, "ticket": ticket_id, "anchor": ids[anchor]},
                    f"automation_timer:{rule.id}:{ids[anchor]}",
                )
            )
    if fired:
        marks = ", ".join(["({}, {}, {}, {}, {})"] * (len(claims) // 5))
        claim_sql = (
            "INSERT INTO automation_fired (rule, event, ticket, outcome, fired_at) "
            f"VALUES {marks} ON CONFLICT (rule, event) DO NOTHING"
        )
        await record_events_many(app, fired, now, automate=False, along=(claim_sql, claims))
    for run_at, jobs in timers.items():
        await app.jobs.enqueue_many("automation_timer", jobs, run_at=run_at)
    if notices:
        await app.jobs.enqueue_many("notify", await _notifications(app, notices))


async def _notifications(
    app: App, notices: list[tuple[str, Rule, Notify, Ticket]]
) -> list[tuple[dict[str, Any], str | None]]:
    """The ``notify`` jobs of inline firings, as the worker's ``notify`` action queues them
    (the assignees' addresses in one query)."""
    assignees = sorted(
        {t.assignee_id for _, _, a, t in notices if "assignee" in a.to and t.assignee_id}
    )
    emails: dict[int, str] = {}
    if assignees:
        marks = ", ".join(["{}"] * len(assignees))
        rows = await app.db.fetch(
            f"SELECT id, email FROM app_user WHERE id IN ({marks})", *assignees
        )
        emails = {int(r["id"]): r["email"] for r in rows}
    jobs: list[tuple[dict[str, Any], str | None]] = []
    for key, rule, action, ticket in notices:
        email = emails.get(ticket.assignee_id) if ticket.assignee_id is not None else None
        job = notify_job(rule, action, ticket, key, email)
        if job is not None:
            jobs.append(job)
    return jobs

"""SLA clocks of tickets: ask the policy for due times and keep the clock's state.

The policy is a plugin (``compute_sla``, sync and pure); the core keeps what it needs in
the ticket row and calls it again when something that moves a deadline happens:

- on create (before the batch writer, like triage: it is pure and needs no transaction);
- on a status change: the clock pauses while the ticket waits on the customer or is on
  hold, and when it is resolved or closed; it resumes when the ticket is open again (a
  reopened ticket counts the time it spent resolved as a pause);
- on a public reply: an agent's reply meets the first and the next response; a customer's
  reply after the first response starts the next-response clock.

From the due (and warning) times the core derives *timers*: one per target and stage
(``warning``, ``breach``) not yet fired. The earliest is copied to the indexed column
``sla_next_check_at``, which the SLA worker (``sla_timers``) scans; the earliest due time
goes to the indexed ``sla_due_at`` ("nearest to breach"). With no ``compute_sla``
implementation enabled, none of this runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.enums import Status
from ticketcore.domain.models import SLA_TARGETS, SlaTargets, Ticket, TicketSla
from ticketcore.services.history import EventDraft
from ticketcore.services.rows import (
    TICKET_COLUMNS,
    TICKET_FROM,
    dump_json,
    load_json,
    ticket_from_row,
)

if TYPE_CHECKING:
    from ticketcore.app import App

#: Statuses in which the SLA clock does not run.
STOPPED = frozenset({Status.PENDING_CUSTOMER, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED})
#: Statuses in which no target is tracked any more.
DONE = frozenset({Status.RESOLVED, Status.CLOSED})


class Timer(msgspec.Struct, frozen=True, array_like=True):
    """A pending alert: at ``at``, ``target`` reaches ``stage`` (its due time is ``due``)."""

    at: datetime
    target: str
    stage: str
    due: datetime

    @property
    def key(self) -> str:
        """``target:stage``, the name under which a fired alert is remembered."""
        return f"{self.target}:{self.stage}"


_TIMERS = msgspec.json.Decoder(list[Timer])


def load_timers(value: Any) -> list[Timer]:
    """Timers from the ``sla_timers`` column (JSON text or already decoded)."""
    if value is None or value == "[]" or value == []:
        return []
    if isinstance(value, str | bytes):
        return _TIMERS.decode(value)
    return msgspec.convert(value, list[Timer])


class SlaPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The stored SLA columns of a ticket, derived from a policy's answer."""

    policy: str | None = None
    first_response_due_at: datetime | None = None
    next_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    timers: list[Timer] = []
    fired: list[str] = []

    @property
    def due_at(self) -> datetime | None:
        """The earliest due time: what "nearest to breach" sorts on."""
        dues = [
            d
            for d in (self.first_response_due_at, self.next_response_due_at, self.resolution_due_at)
            if d is not None
        ]
        return min(dues, default=None)

    @property
    def next_check_at(self) -> datetime | None:
        """When the SLA worker must look at the ticket next."""
        return self.timers[0].at if self.timers else None

    def columns(self) -> dict[str, Any]:
        """Column values to write (JSON columns encoded)."""
        return {
            "sla_policy": self.policy,
            "first_response_due_at": self.first_response_due_at,
            "next_response_due_at": self.next_response_due_at,
            "resolution_due_at": self.resolution_due_at,
            "sla_due_at": self.due_at,
            "sla_next_check_at": self.next_check_at,
            "sla_timers": dump_json(self.timers),
            "sla_fired": dump_json(self.fired),
        }


#: The columns ``SlaPlan.columns`` writes, in that order (for INSERT statements).
PLAN_COLUMNS = tuple(SlaPlan().columns())


def enabled(app: App) -> bool:
    """Whether an SLA policy is enabled (else the core keeps no SLA state at all)."""
    return bool(app.hooks.implementers("compute_sla"))


def compute(app: App, ticket: Ticket, now: datetime) -> SlaTargets | None:
    """The first policy's answer for ``ticket`` (first result, like pluggy's)."""
    for _plugin, targets in app.hooks.iter_results("compute_sla", ticket=ticket, now=now):
        if targets is not None:
            return targets
    return None


def make_plan(targets: SlaTargets | None, fired: list[str], policy: str | None = None) -> SlaPlan:
    """Due times and pending timers from a policy's answer; alerts in ``fired`` are not
    armed again. ``policy`` is kept when the answer is None (e.g. a resolved ticket)."""
    if targets is None:
        return SlaPlan(policy=policy, fired=fired)
    timers: list[Timer] = []
    for target in SLA_TARGETS:
        due = targets.due(target)
        if due is None:
            continue
        warning = targets.warning(target)
        if warning is not None and warning < due and f"{target}:warning" not in fired:
            timers.append(Timer(warning, target, "warning", due))
        if f"{target}:breach" not in fired:
            timers.append(Timer(due, target, "breach", due))
    timers.sort(key=lambda t: t.at)
    return SlaPlan(
        policy=targets.policy,
        first_response_due_at=targets.first_response_due,
        next_response_due_at=targets.next_response_due,
        resolution_due_at=targets.resolution_due,
        timers=timers,
        fired=fired,
    )


def _event(plan: SlaPlan, kind: str, before: TicketSla | None = None) -> EventDraft | None:
    """A history event when the due times change (None when nothing did)."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name in ("first_response_due_at", "next_response_due_at", "resolution_due_at"):
        old = getattr(before, name) if before is not None else None
        new = getattr(plan, name)
        if old != new:
            changes[name] = (_iso(old), _iso(new))
    if before is not None and before.policy != plan.policy:
        changes["sla_policy"] = (before.policy, plan.policy)
    if not changes:
        return None
    return EventDraft(kind=kind, changes=changes, data={"policy": plan.policy})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def on_create(
    app: App, draft: Ticket, now: datetime
) -> tuple[Ticket, SlaPlan | None, list[EventDraft]]:
    """Apply the policy to a new ticket (before it is written): the draft with its due
    times, the plan to store, and an ``sla_applied`` event when a policy applies."""
    if not enabled(app):
        return draft, None, []
    targets = compute(app, draft, now)
    plan = make_plan(targets, [])
    if targets is None:
        return draft, plan, []
    sla = TicketSla(
        policy=plan.policy,
        first_response_due_at=plan.first_response_due_at,
        next_response_due_at=plan.next_response_due_at,
        resolution_due_at=plan.resolution_due_at,
    )
    event = _event(plan, "sla_applied")
    return msgspec.structs.replace(draft, sla=sla), plan, [event] if event else []


async def after_change(
    app: App,
    ticket_id: int,
    now: datetime,
    *,
    reply: str | None = None,
) -> list[EventDraft]:
    """Bring a ticket's SLA clock up to date after a change written in the current
    transaction (status, or a public ``reply`` by ``"agent"`` or ``"customer"``); return
    the history event for changed due times, if any. Call inside the transaction."""
    if not enabled(app):
        return []
    db = app.db
    rows = await db.fetch(
        f"SELECT {TICKET_COLUMNS}, t.sla_fired {TICKET_FROM} WHERE t.id = {{}}", ticket_id
    )
    row = rows[0]
    ticket = ticket_from_row(row)
    before = ticket.sla
    paused_since = before.paused_since
    pauses = list(before.pauses)
    if ticket.status in STOPPED:
        paused_since = paused_since or now
    elif paused_since is not None:
        pauses.append((paused_since, now))
        paused_since = None
    fired: list[str] = list(load_json(row["sla_fired"]) or [])
    awaiting = before.awaiting_reply_since
    if reply == "agent":
        awaiting = None
        fired = [key for key in fired if not key.startswith("next_response:")]
    elif reply == "customer" and ticket.first_response_at is not None and awaiting is None:
        awaiting = now
    sla = TicketSla(
        policy=before.policy,
        paused_since=paused_since,
        pauses=pauses,
        awaiting_reply_since=awaiting,
    )
    ticket = msgspec.structs.replace(ticket, sla=sla)
    targets = None if ticket.status in DONE else compute(app, ticket, now)
    plan = make_plan(targets, fired, policy=before.policy)
    sets = {
        **plan.columns(),
        "sla_paused_at": paused_since,
        "sla_pauses": dump_json(pauses),
        "sla_reply_since": awaiting,
    }
    await db.fetch(
        f"UPDATE ticket SET {', '.join(f'{name} = {{}}' for name in sets)} WHERE id = {{}}",
        *sets.values(),
        ticket_id,
    )
    event = _event(plan, "sla_updated", before)
    if event is not None and paused_since is not None and ticket.status not in DONE:
        event.data["paused_since"] = paused_since.isoformat()
    return [event] if event else []

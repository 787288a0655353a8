"""The SLA worker: fires warnings and breaches when tickets' timers fall due, and runs the
policy's escalation steps, each exactly once.

Due timers are found by an index range scan on ``ticket.sla_next_check_at``. A worker
claims a batch of due tickets with a lease (``sla_locked_by``/``sla_locked_until``: one
``UPDATE ... RETURNING``, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then fires them in
one transaction that first re-reads and locks only the tickets it still holds. Everything a
firing does (the ``sla_warning``/``sla_breach`` event, each escalation step and its event,
the outbox ``notify`` jobs, the ticket's remaining timers) commits together, so a worker
that dies mid-batch leaves nothing half done: its lease expires and another worker fires
the same alerts, once. A worker whose lease expired and was taken over finds the tickets
held by another and leaves them alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Actor, EscalationStep, Notification, SlaAlert, Ticket
from ticketcore.services.history import EventDraft, record_events_many
from ticketcore.services.rows import (
    TICKET_COLUMNS,
    TICKET_FROM,
    dump_json,
    load_json,
    ticket_from_row,
)
from ticketcore.services.sla import Timer, load_timers

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.sla")
ACTOR = Actor.system("sla")


class Fired(msgspec.Struct, kw_only=True):
    """What firing one ticket's due timers produced (before it is written)."""

    ticket_id: int
    events: list[EventDraft]
    notifications: list[Notification]
    sets: dict[str, Any]


class SlaTimers:
    """Claims tickets whose SLA timers are due and fires them; one per application."""

    def __init__(self, app: App, lease_seconds: float = 60, batch_size: int = 100) -> None:
        self.app = app
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self._team_ids: dict[str, int] = {}

    @property
    def worker_id(self) -> str:
        """This worker's name in ``sla_locked_by`` (the job worker's)."""
        return self.app.jobs.worker_id

    # --- finding ----------------------------------------------------------------------------

    async def any_due(self) -> bool:
        """Whether a ticket has a due timer that nobody holds: a cheap read before claiming."""
        now = self.app.clock.now()
        rows = await self.app.db.fetch(
            # ORDER BY keeps PostgreSQL's generic plan (prepared statements) on the index:
            # without it, it chose a sequential scan that read every ticket when none is due.
            "SELECT id FROM ticket WHERE sla_next_check_at <= {} "
            "AND (sla_locked_until IS NULL OR sla_locked_until < {}) "
            "ORDER BY sla_next_check_at LIMIT 1",
            now,
            now,
        )
        return bool(rows)

    async def nearest_due(self, limit: int = 100) -> list[tuple[int, datetime]]:
        """The ``limit`` tickets nearest to (or past) a breach: ``(id, due_at)``, earliest
        first; an index range scan on ``sla_due_at``."""
        rows = await self.app.db.fetch(
            "SELECT id, sla_due_at FROM ticket WHERE sla_due_at IS NOT NULL "
            "ORDER BY sla_due_at LIMIT {}",
            limit,
        )
        return [(r["id"], r["sla_due_at"]) for r in rows]

    async def claim(self, limit: int | None = None) -> list[int]:
        """Take a lease on up to ``limit`` tickets with due timers; return their ids."""
        db = self.app.db
        now = self.app.clock.now()
        if not db.in_transaction() and not await self.any_due():
            return []  # nothing due: no write
        skip_locked = "" if db.is_sqlite else " FOR UPDATE SKIP LOCKED"
        async with db.transaction():
            rows = await db.fetch(
                "UPDATE ticket SET sla_locked_by = {}, sla_locked_until = {} WHERE id IN "
                "(SELECT id FROM ticket WHERE sla_next_check_at <= {} AND "
                "(sla_locked_until IS NULL OR sla_locked_until < {}) "
                f"ORDER BY sla_next_check_at LIMIT {{}}{skip_locked}) RETURNING id",
                self.worker_id,
                now + self.lease,
                now,
                now,
                limit or self.batch_size,
            )
        return sorted(r["id"] for r in rows)

    # --- firing -----------------------------------------------------------------------------

    async def poll(self) -> int:
        """The job worker's poller: one batch, and nothing at all (not even a read) when no
        SLA policy is enabled."""
        if not self.app.hooks.implementers("compute_sla"):
            return 0
        return await self.run_due()

    async def run_due(self, limit: int | None = None) -> int:
        """Claim one batch of due tickets and fire their timers; return how many tickets."""
        ids = await self.claim(limit)
        if ids:
            await self.fire(ids)
        return len(ids)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Fire until no due timer is left; return how many tickets were handled."""
        total = 0
        for _ in range(max_rounds):
            ran = await self.run_due()
            if not ran:
                break
            total += ran
        return total

    async def fire(self, ids: list[int]) -> None:
        """Fire the due timers of claimed tickets ``ids``, in one transaction; tickets this
        worker no longer holds (lease taken over) are skipped."""
        app, db = self.app, self.app.db
        now = app.clock.now()
        lock = "" if db.is_sqlite else " FOR UPDATE OF t"
        placeholders = ", ".join(["{}"] * len(ids))
        async with db.transaction():
            rows = await db.fetch(
                f"SELECT {TICKET_COLUMNS}, t.sla_timers, t.sla_fired, "
                "tm.slug AS team_slug, u.email AS assignee_email "
                f"{TICKET_FROM} LEFT JOIN team tm ON tm.id = t.team "
                "LEFT JOIN app_user u ON u.id = t.assignee "
                f"WHERE t.id IN ({placeholders}) AND t.sla_locked_by = {{}} ORDER BY t.id{lock}",
                *ids,
                self.worker_id,
            )
            results = [await self._fire_one(row, now) for row in rows]
            for result in results:
                sets = result.sets
                await db.fetch(
                    f"UPDATE ticket SET {', '.join(f'{name} = {{}}' for name in sets)} "
                    "WHERE id = {}",
                    *sets.values(),
                    result.ticket_id,
                )
            await record_events_many(
                app, [(r.ticket_id, ACTOR, r.events) for r in results if r.events], now
            )
            notes = [n for r in results for n in r.notifications]
            if notes and app.hooks.implementers("notify"):
                await app.jobs.enqueue_many(
                    "notify",
                    [({"notification": msgspec.to_builtins(n)}, n.idempotency_key) for n in notes],
                )
        app.jobs.wake()

    async def _fire_one(self, row: dict[str, Any], now: datetime) -> Fired:
        """The alerts and escalation steps of one ticket whose timers are due."""
        ticket = ticket_from_row(row)
        timers = load_timers(row["sla_timers"])
        fired: list[str] = list(load_json(row["sla_fired"]) or [])
        due = [t for t in timers if t.at <= now]
        later = [t for t in timers if t.at > now]
        events: list[EventDraft] = []
        notes: list[Notification] = []
        sets: dict[str, Any] = {}
        for timer in due:
            if timer.key in fired:
                continue
            fired.append(timer.key)
            alert = SlaAlert(
                ticket_id=ticket.id,
                policy=ticket.sla.policy,
                target=timer.target,  # type: ignore[arg-type]
                stage=timer.stage,  # type: ignore[arg-type]
                due_at=timer.due,
                team_slug=row["team_slug"],
                assignee_email=row["assignee_email"],
            )
            key = f"sla:{ticket.id}:{timer.target}:{timer.stage}:{int(timer.due.timestamp())}"
            events.append(
                EventDraft(
                    kind=f"sla_{timer.stage}",
                    data={
                        "target": timer.target,
                        "due_at": timer.due.isoformat(),
                        "policy": ticket.sla.policy,
                    },
                )
            )
            base = [alert.assignee_email] if alert.assignee_email else []
            notes.append(_notification(ticket, timer, base, key, {}))
            steps = self._steps(ticket, alert)
            for number, step in enumerate(steps, start=1):
                ticket = await self._run_step(
                    ticket, timer, step, number, f"{key}:step{number}", events, notes, sets
                )
        sets.update(
            sla_timers=dump_json(later),
            sla_fired=dump_json(fired),
            sla_next_check_at=later[0].at if later else None,
            sla_locked_by=None,
            sla_locked_until=None,
        )
        if "priority" in sets or "team" in sets:
            sets["version"] = ticket.version + 1
            sets["updated_at"] = now
        return Fired(ticket_id=ticket.id, events=events, notifications=notes, sets=sets)

    def _steps(self, ticket: Ticket, alert: SlaAlert) -> list[EscalationStep]:
        for _plugin, steps in self.app.hooks.iter_results(
            "sla_escalation", ticket=ticket, alert=alert
        ):
            if steps is not None:
                return list(steps)
        return []

    async def _run_step(
        self,
        ticket: Ticket,
        timer: Timer,
        step: EscalationStep,
        number: int,
        key: str,
        events: list[EventDraft],
        notes: list[Notification],
        sets: dict[str, Any],
    ) -> Ticket:
        """Run one escalation step: queue its notification or change the ticket (recorded in
        ``sets``); append its history event. Returns the ticket as the step leaves it."""
        data: dict[str, Any] = {
            "target": timer.target,
            "stage": timer.stage,
            "step": number,
            "name": step.name,
            "action": step.action,
        }
        changes: dict[str, tuple[Any, Any]] = {}
        if step.raise_priority is not None:
            wanted = Priority(step.raise_priority)
            if wanted.rank > ticket.priority.rank:
                changes["priority"] = (ticket.priority.value, wanted.value)
                sets["priority"] = wanted.value
                ticket = msgspec.structs.replace(ticket, priority=wanted)
            else:
                data["skipped"] = f"priority already {ticket.priority.value}"
        elif step.reassign_team is not None:
            team_id = await self._team_id(step.reassign_team)
            if team_id is None:
                data["skipped"] = f"no team {step.reassign_team!r}"
            elif team_id != ticket.team_id or ticket.assignee_id is not None:
                changes["team_id"] = (ticket.team_id, team_id)
                if ticket.assignee_id is not None:
                    changes["assignee_id"] = (ticket.assignee_id, None)
                sets["team"] = team_id
                sets["assignee"] = None
                ticket = msgspec.structs.replace(ticket, team_id=team_id, assignee_id=None)
            else:
                data["skipped"] = f"already with team {step.reassign_team!r}"
        else:
            recipients = list(dict.fromkeys(step.notify))
            data["recipients"] = recipients
            if recipients:
                notes.append(
                    _notification(
                        ticket, timer, recipients, key, {"step": number, "step_name": step.name}
                    )
                )
            else:
                data["skipped"] = "no recipient"
        events.append(EventDraft(kind="sla_escalated", changes=changes, data=data))
        return ticket

    async def _team_id(self, slug: str) -> int | None:
        """The id of the team ``slug`` (remembered once found; a team created later is
        found on the next alert)."""
        if slug not in self._team_ids:
            rows = await self.app.db.fetch("SELECT id FROM team WHERE slug = {}", slug)
            if not rows:
                return None
            self._team_ids[slug] = rows[0]["id"]
        return self._team_ids[slug]


_TARGET_NAMES = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


def _notification(
    ticket: Ticket, timer: Timer, recipients: list[str], key: str, extra: dict[str, Any]
) -> Notification:
    """The ``sla_warning``/``sla_breach`` notification about ``timer`` of ``ticket``."""
    target = _TARGET_NAMES.get(timer.target, timer.target)
    due = timer.due.strftime("%Y-%m-%d %H:%M UTC")
    if timer.stage == "warning":
        body = f"The {target} of ticket {ticket.number} is due at {due}."
    else:
        body = f"The {target} of ticket {ticket.number} was due at {due} and is overdue."
    return Notification(
        kind=f"sla_{timer.stage}",
        ticket_id=ticket.id,
        recipients=recipients,
        subject=ticket.subject,
        body=body,
        idempotency_key=key,
        data={
            "ticket_number": ticket.number,
            "target": target,
            "due_at": due,
            "priority": ticket.priority.value,
            "policy": ticket.sla.policy,
            **extra,
        },
    )

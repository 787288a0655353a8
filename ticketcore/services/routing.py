"""Routing: build the snapshot the strategies decide on, run the chain, apply the result."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.db.tables import OPEN_TICKET_SQL
from ticketcore.domain.models import (
    AVAILABILITY_STATES,
    AgentSnapshot,
    Availability,
    RoutingContext,
    TeamSnapshot,
    Ticket,
    WorkingHours,
)
from ticketcore.services.history import EventDraft
from ticketcore.services.routing_roster import STATE_SQL, refresh
from ticketcore.services.rows import load_json

if TYPE_CHECKING:
    from ticketcore.app import App

_ROUTING_LOCK_KEY = 7_277_002


async def load_routing_context(app: App, now: datetime) -> RoutingContext:
    """Teams and their active agents, with round-robin state, availability, skills and
    open-ticket counts; call inside the transaction.

    Once per batch of new tickets (the batch writer then keeps the snapshot current with
    :func:`note_assignment`): one query checks whether the process's cached snapshot
    (:mod:`ticketcore.services.routing_roster`) is still the database's state, one counts
    open tickets per assignee; only when agents, teams or skills changed, or another
    process (or a rolled-back batch) assigned meanwhile, are teams, members and skills read
    again (three more queries, whatever the number of agents).

    On PostgreSQL a transaction-scoped advisory lock serialises routing between processes,
    so two workers never both pick the same "least recently assigned" agent.
    """
    db = app.db
    if not db.is_sqlite:
        await db.fetch("SELECT pg_advisory_xact_lock({})", _ROUTING_LOCK_KEY)
    [state] = await db.fetch(STATE_SQL)
    key = (int(state["v"] or 0), int(state["a"] or 0))
    open_counts = {
        row["assignee"]: int(row["n"])
        for row in await db.fetch(
            "SELECT assignee, COUNT(*) AS n FROM ticket "
            f"WHERE assignee IS NOT NULL AND {OPEN_TICKET_SQL} GROUP BY assignee"
        )
    }
    cache = app.routing_roster
    if cache.valid_for(key) and cache.context is not None:
        shifts = {agent: is_on_shift(hours, now) for agent, hours in cache.hours.items()}
        context = refresh(cache.context, now, open_counts, shifts)
        cache.loaded(key, context, cache.hours)
        return context
    context, hours = await _load_roster(app, now, open_counts)
    cache.loaded(key, context, hours)
    return context


async def _load_roster(
    app: App, now: datetime, open_counts: dict[int, int]
) -> tuple[RoutingContext, dict[int, Any]]:
    """Read teams, members and skills; return the snapshot and the raw working hours of
    the agents who have some."""
    db = app.db
    teams = await db.fetch("SELECT id, name, slug FROM team ORDER BY id")
    members = await db.fetch(
        "SELECT tm.team, u.id, u.name, u.available, u.availability, u.capacity, "
        "u.working_hours, tm.last_assigned_at "
        'FROM team_member tm JOIN app_user u ON u.id = tm."user" '
        "WHERE u.active = {} AND u.role IN ('agent', 'admin') ORDER BY u.id",
        True,
    )
    skills: dict[int, dict[str, int]] = {}
    for row in await db.fetch('SELECT "user", skill, level FROM agent_skill'):
        skills.setdefault(row["user"], {})[row["skill"]] = int(row["level"])
    agents: dict[int, list[AgentSnapshot]] = {}
    on_shift: dict[int, bool] = {}
    hours: dict[int, Any] = {}
    for m in members:
        if m["id"] not in on_shift:
            on_shift[m["id"]] = is_on_shift(m["working_hours"], now)
            if m["working_hours"] is not None:
                hours[m["id"]] = m["working_hours"]
        availability: Availability = (
            m["availability"] if m["availability"] in AVAILABILITY_STATES else "offline"
        )
        agents.setdefault(m["team"], []).append(
            AgentSnapshot(
                id=m["id"],
                name=m["name"],
                available=bool(m["available"]),
                availability=availability,
                capacity=m["capacity"],
                last_assigned_at=m["last_assigned_at"],
                skills=skills.get(m["id"], {}),
                open_tickets=open_counts.get(m["id"], 0),
                on_shift=on_shift[m["id"]],
            )
        )
    snapshots = {
        t["id"]: TeamSnapshot(
            id=t["id"], name=t["name"], slug=t["slug"], agents=agents.get(t["id"], [])
        )
        for t in teams
    }
    context = RoutingContext(
        now=now, teams=snapshots, team_slugs={t.slug: t.id for t in snapshots.values()}
    )
    return context, hours


def remember_routed(app: App, context: RoutingContext, assignments: int) -> None:
    """Keep the snapshot as a batch's routing left it (``assignments`` recorded), for the
    next batch of this process."""
    app.routing_roster.routed(context, assignments)


def working_hours_of(value: Any) -> WorkingHours | None:
    """Decode a stored ``app_user.working_hours`` value (None when unset or unreadable)."""
    raw = load_json(value)
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, WorkingHours)
    except msgspec.ValidationError:
        return None


def is_on_shift(value: Any, now: datetime) -> bool:
    """Whether an agent with these stored working hours is on shift at ``now``. Hours
    that cannot be read count as always on shift (they are validated when set)."""
    if value is None:  # the common case, once per agent per routing snapshot: no decoding
        return True
    hours = working_hours_of(value)
    if hours is None or hours.problems():
        return True
    return hours.is_working(now)


def run_routing_chain(
    app: App,
    ticket: Ticket,
    context: RoutingContext,
) -> tuple[Ticket, list[EventDraft]]:
    """Walk the routing strategies in config order; return the routed ticket and one
    history event per decision, each with the plugin's reason.

    A decision naming an unknown team, or an agent outside the team, is not applied: it is
    recorded as ``routing_rejected`` so a misconfigured strategy never loses a ticket.
    """
    events: list[EventDraft] = []
    current = ticket
    for plugin, route in app.hooks.callers("route_ticket"):
        decision = route(ticket=current, context=context)
        if decision is None:
            continue
        team_id = decision.team_id if decision.team_id is not None else current.team_id
        problem = _check_decision(context, team_id, decision.assignee_id)
        if problem:
            events.append(
                EventDraft(
                    kind="routing_rejected",
                    data={"plugin": plugin, "reason": decision.reason, "problem": problem},
                )
            )
            continue
        changes: dict[str, tuple[object, object]] = {}
        if team_id != current.team_id:
            changes["team_id"] = (current.team_id, team_id)
        if decision.assignee_id is not None and decision.assignee_id != current.assignee_id:
            changes["assignee_id"] = (current.assignee_id, decision.assignee_id)
        current = msgspec.structs.replace(
            current,
            team_id=team_id,
            assignee_id=decision.assignee_id
            if decision.assignee_id is not None
            else current.assignee_id,
        )
        events.append(
            EventDraft(
                kind="routed", changes=changes, data={"plugin": plugin, "reason": decision.reason}
            )
        )
        if decision.assignee_id is not None or decision.final:
            break
    return current, events


def _check_decision(
    context: RoutingContext, team_id: int | None, assignee_id: int | None
) -> str | None:
    if team_id is not None and team_id not in context.teams:
        return f"team {team_id} does not exist"
    if assignee_id is not None:
        if team_id is None:
            return "an assignee needs a team"
        if all(agent.id != assignee_id for agent in context.teams[team_id].agents):
            return f"agent {assignee_id} is not an active member of team {team_id}"
    return None


async def record_assignment(app: App, team_id: int, user_id: int, now: datetime) -> None:
    """Keep round-robin state in the database, so it survives restarts."""
    # "Least recently assigned" must be a strict order: when two assignments get the same
    # timestamp (a coarse clock, a burst within one tick, a frozen test clock) the tie went to
    # the lowest agent id, so one agent took every ticket of the burst. Stamp each assignment
    # after every earlier one in the team. (Typed column values, not MAX(): SQLite returns an
    # aggregate of a timestamp column as text.)
    stamps = [
        row["last_assigned_at"]
        for row in await app.db.fetch(
            "SELECT last_assigned_at FROM team_member WHERE team = {} "
            "AND last_assigned_at IS NOT NULL",
            team_id,
        )
    ]
    if stamps and max(stamps) >= now:
        now = max(stamps) + timedelta(microseconds=1)
    await app.db.fetch(
        "UPDATE team_member SET last_assigned_at = {}, assigned_count = assigned_count + 1 "
        'WHERE team = {} AND "user" = {}',
        now,
        team_id,
        user_id,
    )


def note_assignment(
    context: RoutingContext, team_id: int, user_id: int, now: datetime
) -> RoutingContext:
    """The context as it is after ``user_id`` got a ticket in ``team_id`` at ``now``: lets
    several tickets be routed from one snapshot (a batch) as if one after the other.

    The agent's round-robin stamp moves in ``team_id`` only (it is per team); its open-ticket
    count goes up by one in every team it belongs to (load is per agent).
    """
    team = context.teams[team_id]
    # Same strict order as record_assignment: after every earlier stamp of the team.
    stamps = [a.last_assigned_at for a in team.agents if a.last_assigned_at is not None]
    if stamps and max(stamps) >= now:
        now = max(stamps) + timedelta(microseconds=1)
    teams = dict(context.teams)
    for tid, snapshot in context.teams.items():
        if all(a.id != user_id for a in snapshot.agents):
            continue
        agents = [
            msgspec.structs.replace(
                a,
                open_tickets=a.open_tickets + 1,
                **({"last_assigned_at": now} if tid == team_id else {}),
            )
            if a.id == user_id
            else a
            for a in snapshot.agents
        ]
        teams[tid] = msgspec.structs.replace(snapshot, agents=agents)
    return msgspec.structs.replace(context, teams=teams)

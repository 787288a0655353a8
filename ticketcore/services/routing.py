"""Routing: build the snapshot the strategies decide on, run the chain, apply the result."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

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
from ticketcore.services.routing_roster import LOAD_SQL_POSTGRES, LOAD_SQL_SQLITE, read_state
from ticketcore.services.rows import load_json

if TYPE_CHECKING:
    from ticketcore.app import App

_ROUTING_LOCK_KEY = 7_277_002
#: Roles routing may assign (with an active account).
_ROUTED_ROLES = ("agent", "admin")


async def load_routing_context(app: App, now: datetime) -> RoutingContext:
    """Teams and their active agents, with round-robin state, availability, skills and
    open-ticket counts; call inside the transaction.

    Once per batch of new tickets (the batch writer then keeps the snapshot current with
    :func:`note_routed`): one query (:mod:`~ticketcore.services.routing_roster`'s
    ``LOAD_SQL_SQLITE`` or ``LOAD_SQL_POSTGRES``) reads both the key that says whether the
    process's cached snapshot is still the database's state and the open tickets per
    agent, both kept by triggers (``agent_load``, ``routing_roster_version``; see
    :mod:`ticketcore.db.load_triggers`), so no ticket is read; only when agents, teams or
    skills changed, or another process (or a rolled-back batch) assigned meanwhile, are
    teams, members and skills read again (three more queries, whatever the number of
    agents). On a hit only the agents whose open
    tickets or shift changed are copied.

    On PostgreSQL a transaction-scoped advisory lock serialises routing between processes,
    so two workers never both pick the same "least recently assigned" agent. It is a
    statement of its own, before the read: in READ COMMITTED a statement sees the data as of
    its start, so a read in the locking statement could predate the previous holder's commit.
    """
    db = app.db
    if not db.is_sqlite:
        await db.fetch("SELECT pg_advisory_xact_lock({})", _ROUTING_LOCK_KEY)
    # One round trip: the cache key and the open tickets per assignee.
    key, open_counts = read_state(
        await db.fetch(LOAD_SQL_SQLITE if db.is_sqlite else LOAD_SQL_POSTGRES)
    )
    cache = app.routing_roster
    if cache.valid_for(key):
        return cache.refresh(key, now, open_counts)
    context, hours, floors = await _load_roster(app, now, open_counts)
    cache.loaded(key, context, hours, open_counts, floors)
    return context


async def _load_roster(
    app: App, now: datetime, open_counts: dict[int, int]
) -> tuple[RoutingContext, dict[int, WorkingHours], dict[int, datetime]]:
    """Read teams, members and skills; return the snapshot, the valid working hours of the
    agents who have some, and per team the latest stamp of members left out of it."""
    db = app.db
    teams = await db.fetch("SELECT id, name, slug FROM team ORDER BY id")
    # Every member, routable or not: the stamps of those left out (inactive accounts,
    # non-agents) still bound the next stamp of their team (see record_assignment).
    members = await db.fetch(
        "SELECT tm.team, u.id, u.name, u.active, u.role, u.available, u.availability, "
        "u.capacity, u.working_hours, tm.last_assigned_at "
        'FROM team_member tm JOIN app_user u ON u.id = tm."user" ORDER BY u.id'
    )
    skills: dict[int, dict[str, int]] = {}
    for row in await db.fetch('SELECT "user", skill, level FROM agent_skill'):
        skills.setdefault(row["user"], {})[row["skill"]] = int(row["level"])
    agents: dict[int, list[AgentSnapshot]] = {}
    on_shift: dict[int, bool] = {}
    hours: dict[int, WorkingHours] = {}
    floors: dict[int, datetime] = {}
    for m in members:
        if not (m["active"] and m["role"] in _ROUTED_ROLES):
            stamp = m["last_assigned_at"]
            if stamp is not None and (m["team"] not in floors or stamp > floors[m["team"]]):
                floors[m["team"]] = stamp
            continue
        if m["id"] not in on_shift:
            # Decoded once per load; refreshes then only ask whether ``now`` is in a shift.
            decoded = _valid_hours(m["working_hours"])
            on_shift[m["id"]] = decoded is None or decoded.is_working(now)
            if decoded is not None:
                hours[m["id"]] = decoded
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
    return context, hours, floors


def remember_routed(app: App, context: RoutingContext, assignees: Iterable[int]) -> None:
    """Keep the snapshot as a batch's routing left it (one entry in ``assignees`` per
    assignment recorded), for the next batch of this process."""
    app.routing_roster.routed(context, assignees)


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
    hours = _valid_hours(value)
    return hours is None or hours.is_working(now)


def _valid_hours(value: Any) -> WorkingHours | None:
    """Stored working hours that restrict the shift: None when unset, unreadable or
    invalid (such an agent is always on shift)."""
    if value is None:  # the common case, once per agent per roster load: no decoding
        return None
    hours = working_hours_of(value)
    if hours is None or hours.problems():
        return None
    return hours


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


async def lock_routing(app: App) -> None:
    """Take the routing lock (PostgreSQL; held to the end of the transaction) before a
    manual change of a ticket's assignee: the change moves ``agent_load`` rows (triggers,
    migration 0013), which routing writes under this lock, and :func:`record_assignment`
    then takes the lock too; taken after those rows, the two transactions could deadlock."""
    if not app.db.is_sqlite:
        await app.db.fetch("SELECT pg_advisory_xact_lock({})", _ROUTING_LOCK_KEY)


async def record_assignment(app: App, team_id: int, user_id: int, now: datetime) -> None:
    """Keep round-robin state in the database, so it survives restarts (an assignment made
    without a routing snapshot: the batch writer uses :func:`record_assignments`)."""
    # "Least recently assigned" must be a strict order: when two assignments get the same
    # timestamp (a coarse clock, a burst within one tick, a frozen test clock) the tie went to
    # the lowest agent id, so one agent took every ticket of the burst. Stamp each assignment
    # after every earlier one in the team. (Typed column values, not MAX(): SQLite returns an
    # aggregate of a timestamp column as text.)
    # The routing lock: the batch writer stamps from its snapshot without reading the
    # table again, so a manual assignment must not slip in between its read and write.
    await lock_routing(app)
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


async def record_assignments(app: App, assignments: Sequence[tuple[int, int, datetime]]) -> None:
    """Store the round-robin state of assignments routed from this transaction's snapshot:
    ``(team, agent, stamp)`` each, with the stamp :func:`note_routed` returned.

    Unlike :func:`record_assignment` this reads nothing: under the routing lock, with a
    snapshot the cache key proved current, the snapshot holds every stamp of the team (and
    its floor those of members left out), so the stamp is already after all of them; and
    the database gets exactly the stamp the cached snapshot holds. One statement per
    (team, agent), however many tickets of the batch it got.
    """
    latest: dict[tuple[int, int], tuple[datetime, int]] = {}
    for team_id, user_id, stamp in assignments:
        previous, count = latest.get((team_id, user_id), (stamp, 0))
        latest[team_id, user_id] = (max(previous, stamp), count + 1)
    for (team_id, user_id), (stamp, count) in latest.items():
        await app.db.fetch(
            "UPDATE team_member SET last_assigned_at = {}, "
            'assigned_count = assigned_count + {} WHERE team = {} AND "user" = {}',
            stamp,
            count,
            team_id,
            user_id,
        )


def next_stamp(team: TeamSnapshot, now: datetime, floor: datetime | None = None) -> datetime:
    """The round-robin stamp of an assignment in ``team`` at ``now``: ``now``, or just after
    the latest stamp of the team when that is not earlier (the strict order of
    :func:`record_assignment`); ``floor``: the latest stamp of members not in the snapshot."""
    latest = floor
    for agent in team.agents:
        stamp = agent.last_assigned_at
        if stamp is not None and (latest is None or stamp > latest):
            latest = stamp
    if latest is not None and latest >= now:
        return latest + timedelta(microseconds=1)
    return now


def note_assignment(
    context: RoutingContext,
    team_id: int,
    user_id: int,
    now: datetime,
    *,
    teams: Iterable[int] | None = None,
) -> RoutingContext:
    """The context as it is after ``user_id`` got a ticket in ``team_id`` at ``now``: lets
    several tickets be routed from one snapshot (a batch) as if one after the other.

    The agent's round-robin stamp moves in ``team_id`` only (it is per team); its open-ticket
    count goes up by one in every team it belongs to (load is per agent). ``teams``: the
    ids of those teams when the caller knows them (spares a walk over every agent).
    """
    # Same strict order as record_assignment: after every earlier stamp of the team.
    now = next_stamp(context.teams[team_id], now)
    if teams is None:
        teams = [
            tid
            for tid, snapshot in context.teams.items()
            if any(a.id == user_id for a in snapshot.agents)
        ]
    updated = dict(context.teams)
    for tid in teams:
        snapshot = context.teams[tid]
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
        updated[tid] = msgspec.structs.replace(snapshot, agents=agents)
    return msgspec.structs.replace(context, teams=updated)


def note_routed(
    app: App, context: RoutingContext, team_id: int, user_id: int, now: datetime
) -> tuple[RoutingContext, datetime]:
    """:func:`note_assignment` for the batch writer, on a context from
    :func:`load_routing_context` of this transaction: the context after the assignment and
    the stamp it gave the agent, to store with :func:`record_assignments`. The stamp also
    comes after the team's members outside the snapshot, as :func:`record_assignment`'s
    would."""
    cache = app.routing_roster
    stamp = next_stamp(context.teams[team_id], now, cache.floors.get(team_id))
    teams = cache.teams_of.get(user_id)  # None (walk every team) if unknown to the cache
    return note_assignment(context, team_id, user_id, stamp, teams=teams), stamp

"""A per-process cache of the routing snapshot, so routing does not reload every agent for
every new ticket (at 1,000 agents that load cost 2.5-4 ms per write transaction).

Each routing batch reads the database once, in one statement after the routing lock
(:data:`LOAD_SQL_SQLITE`, :data:`LOAD_SQL_POSTGRES`): the cache key and the open-ticket
counts per agent, both kept by database triggers (``ticketcore.db.load_triggers``,
migration 0013) so the read costs the same at 100,000 open tickets as at 500. The cached
snapshot is reused only while that key says nothing it holds has changed:

- the *roster* (teams, members, agents' names, roles, availability, capacity, working hours,
  skills) carries a version that database triggers bump on any change to those columns
  (``routing_roster_version``, migration 0007), whoever makes it, raw SQL included;
- the *rotation* (round-robin stamps) is checked with the sum of
  ``team_member.assigned_count`` (``routing_roster_version.assignments``, kept by triggers):
  every assignment increments one count, so another process's assignment (or a rolled-back
  batch of ours) changes the sum and forces a reload.

Open-ticket counts (closing and reassigning move them; ``agent_load``, kept by triggers on
``ticket``) are read fresh on every load, and on-shift flags are recomputed from the
agents' working hours at the load's time. Both are compared with what the snapshot already
holds, so a load copies only the teams of agents whose count or shift changed instead of
walking every agent.

The batch writer then stores each assignment's round-robin stamp as the snapshot computed
it (``routing.note_routed``, ``routing.record_assignments``: no read of the team's stamps),
so the database and the cached snapshot hold the same stamps; :attr:`RosterCache.floors`
keeps the stamps of members the snapshot leaves out, which a new stamp must also follow.

The one case the check cannot see: a batch of ours rolled back while another process made
exactly as many assignments before our next load; the snapshot then misses those
assignments' stamps until the next change (fairness off by at most that batch), never an
away or removed agent (the roster version catches those).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from ticketcore.domain.models import RoutingContext, WorkingHours

#: What the cache is valid for: (roster version, sum of assignment counts).
RosterKey = tuple[int, int]
#: The cache key (``v``: roster version, ``a``: sum of assignment counts, both on the one
#: row of ``routing_roster_version``) and each agent's open tickets (``agent_load``, rows
#: above 0), in one statement (one round trip, and one snapshot: the counts are those of
#: the state the key describes) and in one row (there always is one: an aggregate over
#: ``agent_load``, the key joined to it; rows cost more than the aggregation: at 300
#: assignees a row each took 0.54 ms on SQLite, one row 0.25 ms; at 1,000 on PostgreSQL
#: 1.8 ms against 0.7). Triggers keep both (``ticketcore.db.load_triggers``, migration
#: 0013), so the statement reads no ticket and no team member: its cost follows the number
#: of agents with open tickets, not the number of tickets.
#: SQLite: the counts as text, ``"agent n agent n ..."`` (NULL when none is open).
LOAD_SQL_SQLITE = (
    "SELECT r.version AS v, r.assignments AS a, l.pairs FROM "
    "(SELECT group_concat(\"user\" || ' ' || open_tickets, ' ') AS pairs FROM agent_load "
    "WHERE open_tickets > 0) AS l LEFT JOIN routing_roster_version r ON r.id = 1"
)
#: PostgreSQL: the counts as two arrays (aggregates of one query level see the rows in the
#: same order, so they are aligned; NULL when no ticket is open).
LOAD_SQL_POSTGRES = (
    "SELECT r.version AS v, r.assignments AS a, l.ids, l.ns FROM "
    '(SELECT array_agg("user") AS ids, array_agg(open_tickets) AS ns FROM agent_load '
    "WHERE open_tickets > 0) AS l LEFT JOIN routing_roster_version r ON r.id = 1"
)


def read_state(rows: list[dict[str, Any]]) -> tuple[RosterKey, dict[int, int]]:
    """The cache key and the open tickets per agent (agents with none left out), from the
    row of :data:`LOAD_SQL_SQLITE` or :data:`LOAD_SQL_POSTGRES`."""
    [row] = rows
    key = (int(row["v"] or 0), int(row["a"] or 0))
    if "pairs" in row:
        numbers = iter(map(int, (row["pairs"] or "").split()))
        return key, dict(zip(numbers, numbers, strict=True))
    return key, dict(zip(row["ids"] or (), row["ns"] or (), strict=True))


class RosterCache:
    """The last routing snapshot of one application and the database state it matches."""

    def __init__(self) -> None:
        self.key: RosterKey | None = None
        self.context: RoutingContext | None = None
        #: Working hours of the agents who have valid ones (everyone else is always on
        #: shift), decoded once per load.
        self.hours: dict[int, WorkingHours] = {}
        #: Open tickets per assignee as the snapshot counts them (absent: none): the
        #: database's counts at the last load plus this process's assignments since.
        self.counts: dict[int, int] = {}
        #: On-shift flags of the agents in :attr:`hours`, as the snapshot holds them.
        self.shifts: dict[int, bool] = {}
        #: The teams each agent of the snapshot is in.
        self.teams_of: dict[int, tuple[int, ...]] = {}
        #: Per team, the latest round-robin stamp of the members the snapshot leaves out
        #: (inactive accounts, non-agents): a new stamp must come after those too.
        self.floors: dict[int, datetime] = {}
        self._loaded: RosterKey | None = None

    def valid_for(self, key: RosterKey) -> bool:
        """Whether the cached snapshot is the database's current state."""
        return self.context is not None and self.key == key

    def loaded(
        self,
        key: RosterKey,
        context: RoutingContext,
        hours: dict[int, WorkingHours],
        counts: dict[int, int],
        floors: dict[int, datetime],
    ) -> None:
        """Record the snapshot just read from the database for ``key``, with the counts its
        ``open_tickets`` come from."""
        self.key = self._loaded = key
        self.context = context
        self.hours = hours
        self.counts = counts
        self.floors = floors
        teams_of: dict[int, list[int]] = {}
        shifts: dict[int, bool] = {}
        for team_id, team in context.teams.items():
            for agent in team.agents:
                teams_of.setdefault(agent.id, []).append(team_id)
                if agent.id in hours:
                    shifts[agent.id] = agent.on_shift
        self.teams_of = {agent: tuple(teams) for agent, teams in teams_of.items()}
        self.shifts = shifts

    def refresh(self, key: RosterKey, now: datetime, counts: dict[int, int]) -> RoutingContext:
        """The cached snapshot (valid for ``key``) with this load's time, open-ticket counts
        and on-shift flags at ``now``; only the teams of agents whose count or shift changed
        are copied, the rest is shared."""
        assert self.context is not None
        shifts = {agent: hours.is_working(now) for agent, hours in self.hours.items()}
        changed: set[int] = set()
        if counts != self.counts:  # the common case (only our own assignments) is equal
            old = self.counts
            changed.update(
                a for a in counts.keys() | old.keys() if counts.get(a, 0) != old.get(a, 0)
            )
        if shifts != self.shifts:
            changed.update(a for a, on in shifts.items() if self.shifts.get(a) != on)
        teams = self.context.teams
        touched = {team for agent in changed for team in self.teams_of.get(agent, ())}
        if touched:
            teams = dict(teams)
            for team_id in touched:
                team = teams[team_id]
                agents = [
                    msgspec.structs.replace(
                        a, open_tickets=counts.get(a.id, 0), on_shift=shifts.get(a.id, True)
                    )
                    if a.id in changed
                    else a
                    for a in team.agents
                ]
                teams[team_id] = msgspec.structs.replace(team, agents=agents)
        context = msgspec.structs.replace(self.context, now=now, teams=teams)
        self.key = self._loaded = key
        self.context = context
        self.counts = counts
        self.shifts = shifts
        return context

    def routed(self, context: RoutingContext, assignees: Iterable[int]) -> None:
        """Keep the snapshot as routing left it after assigning ``assignees`` (one entry
        per assignment; each adds one to the database's sum once committed; a rollback
        leaves the sum behind and the next load reloads)."""
        if self._loaded is None:
            return
        count = 0
        for agent in assignees:  # note_assignment added one open ticket to each
            self.counts[agent] = self.counts.get(agent, 0) + 1
            count += 1
        version, total = self._loaded
        self.key = (version, total + count)
        self.context = context

    def clear(self) -> None:
        """Forget everything."""
        self.key = self._loaded = None
        self.context = None
        self.hours = {}
        self.counts = {}
        self.shifts = {}
        self.teams_of = {}
        self.floors = {}

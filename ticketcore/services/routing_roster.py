"""A per-process cache of the routing snapshot, so routing does not reload every agent for
every new ticket (at 1,000 agents that load cost 2.5-4 ms per write transaction).

The cached snapshot is reused only while the database says nothing it holds has changed:

- the *roster* (teams, members, agents' names, roles, availability, capacity, working hours,
  skills) carries a version that database triggers bump on any change to those columns
  (``routing_roster_version``, migration 0007), whoever makes it, raw SQL included;
- the *rotation* (round-robin stamps) is checked with ``SUM(team_member.assigned_count)``:
  every assignment increments one count, so another process's assignment (or a rolled-back
  batch of ours) changes the sum and forces a reload.

Open-ticket counts (closing and reassigning move them) are read fresh on every load, and
on-shift flags are recomputed from the agents' working hours at the load's time.

The one case the check cannot see: a batch of ours rolled back while another process made
exactly as many assignments before our next load; the snapshot then misses those
assignments' stamps until the next change (fairness off by at most that batch), never an
away or removed agent (the roster version catches those).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ticketcore.domain.models import RoutingContext

#: What the cache is valid for: (roster version, sum of assignment counts).
RosterKey = tuple[int, int]
STATE_SQL = (
    "SELECT (SELECT version FROM routing_roster_version WHERE id = 1) AS v, "
    "(SELECT COALESCE(SUM(assigned_count), 0) FROM team_member) AS a"
)


class RosterCache:
    """The last routing snapshot of one application and the database state it matches."""

    def __init__(self) -> None:
        self.key: RosterKey | None = None
        self.context: RoutingContext | None = None
        #: Raw working hours of agents who have some (the others are always on shift).
        self.hours: dict[int, Any] = {}
        self._loaded: RosterKey | None = None

    def valid_for(self, key: RosterKey) -> bool:
        """Whether the cached snapshot is the database's current state."""
        return self.context is not None and self.key == key

    def loaded(self, key: RosterKey, context: RoutingContext, hours: dict[int, Any]) -> None:
        """Record the snapshot just loaded (or refreshed) for ``key``."""
        self.key = self._loaded = key
        self.context = context
        self.hours = hours

    def routed(self, context: RoutingContext, assignments: int) -> None:
        """Keep the snapshot as routing left it after ``assignments`` assignments (each
        adds one to the database's sum once committed; a rollback leaves the sum behind
        and the next load reloads)."""
        if self._loaded is None:
            return
        version, total = self._loaded
        self.key = (version, total + assignments)
        self.context = context

    def clear(self) -> None:
        """Forget everything."""
        self.key = self._loaded = None
        self.context = None
        self.hours = {}


def refresh(
    context: RoutingContext,
    now: datetime,
    open_counts: dict[int, int],
    on_shift: dict[int, bool],
) -> RoutingContext:
    """The cached snapshot with this load's time, open-ticket counts and on-shift flags
    (``on_shift`` lists only agents with working hours); unchanged parts are shared."""
    teams = {}
    for team_id, team in context.teams.items():
        agents = []
        changed = False
        for agent in team.agents:
            count = open_counts.get(agent.id, 0)
            shift = on_shift.get(agent.id, True)
            if count != agent.open_tickets or shift != agent.on_shift:
                agent = msgspec.structs.replace(agent, open_tickets=count, on_shift=shift)
                changed = True
            agents.append(agent)
        teams[team_id] = msgspec.structs.replace(team, agents=agents) if changed else team
    return msgspec.structs.replace(context, now=now, teams=teams)

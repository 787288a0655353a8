"""Least loaded: assign a ticket to the online agent of its team (switched on, online and within
working hours) with the lowest share of their capacity in use.

An agent's load is the number of their tickets, in any team, whose status is new, open,
pending_customer or on_hold (``AgentSnapshot.open_tickets``, counted by the host once per
batch and kept current within it). Capacity is the agent's own (``app_user.capacity``, set
with ``app.directory.set_capacity``) or ``default_capacity``. Agents at or over capacity are
skipped; among the rest the lowest ``load / capacity`` wins, ties going to the agent assigned
least recently in the team. When every online agent is full the ticket is left to the next
strategy (or unassigned in its team with ``when_full = "wait"``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

import msgspec

from ticketcore import AgentSnapshot, RouteDecision, RoutingContext, Ticket, hookimpl

_NEVER = datetime.min.replace(tzinfo=UTC)


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.routing.least_loaded]``."""

    #: Capacity of agents who have none of their own.
    default_capacity: int = 10
    #: Slug of the team to use when no earlier strategy chose one; None leaves such tickets.
    default_team: str | None = None
    #: Every online agent is full: ``pass`` lets the next strategy decide, ``wait`` ends
    #: the chain with the ticket unassigned in its team.
    when_full: Literal["pass", "wait"] = "pass"

    def __post_init__(self) -> None:
        if self.default_capacity < 0:
            raise ValueError("default_capacity cannot be negative")


class LeastLoaded:
    """Assigns to the online agent with the most room, relative to capacity."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def capacity(self, agent: AgentSnapshot) -> int:
        """The number of open tickets ``agent`` may hold."""
        return agent.capacity if agent.capacity is not None else self.config.default_capacity

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Pick the routable agent under capacity with the lowest load ratio."""
        team = context.team_to_staff(ticket, self.config.default_team)
        if team is None:
            return None
        team_id = team.id
        room = [a for a in team.agents if a.routable and a.open_tickets < self.capacity(a)]
        if not room:
            if self.config.when_full == "wait":
                return RouteDecision(
                    team_id=team_id,
                    final=True,
                    reason=f"every online agent in {team.name} is at capacity: left unassigned",
                )
            return None
        # Compare load / capacity exactly without a Fraction per agent (costly at 1,000
        # agents): scaled to the capacities' common multiple, the ratios are integers.
        scale = math.lcm(*{self.capacity(a) for a in room})
        agent = min(
            room,
            key=lambda a: (
                a.open_tickets * (scale // self.capacity(a)),
                a.last_assigned_at or _NEVER,
                a.id,
            ),
        )
        return RouteDecision(
            team_id=team_id,
            assignee_id=agent.id,
            reason=(
                f"least loaded in {team.name}: {agent.name} has {agent.open_tickets} open "
                f"of {self.capacity(agent)}"
            ),
        )


def create(config: Config) -> LeastLoaded:
    """Entry point factory: build the plugin from its validated settings."""
    return LeastLoaded(config)

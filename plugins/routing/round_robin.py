"""Round robin: fair rotation within a team, favouring the agent assigned least recently.

The rotation state (when each agent last got a ticket in each team) lives in the database,
so it survives restarts and is shared by every process.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from ticketcore import RouteDecision, RoutingContext, Ticket, hookimpl

_NEVER = datetime.min.replace(tzinfo=UTC)


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.routing.round_robin]``."""

    #: Slug of the team to use when no earlier strategy chose one; None leaves such tickets.
    default_team: str | None = None


class RoundRobin:
    """Assigns each ticket to the online agent of its team who waited longest."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Pick the least recently assigned routable agent of the ticket's team (switched on,
        online and within working hours); away, offline and off-shift agents get nothing."""
        team = context.team_to_staff(ticket, self.config.default_team)
        if team is None:
            return None
        team_id = team.id
        available = [a for a in team.agents if a.routable]
        if not available:
            return None
        agent = min(available, key=lambda a: (a.last_assigned_at or _NEVER, a.id))
        return RouteDecision(
            team_id=team_id,
            assignee_id=agent.id,
            reason=f"round robin in {team.name}: {agent.name} was assigned least recently",
        )


def create(config: Config) -> RoundRobin:
    """Entry point factory: build the plugin from its validated settings."""
    return RoundRobin(config)

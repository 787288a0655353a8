"""Skills: assign a ticket only to an agent who has every skill it requires, at the level it
requires; among those, the one assigned least recently in the team.

What a ticket requires comes from two places, merged (the higher level wins per skill):

- its category, through the ``categories`` setting: ``{"database": {"postgres": 4}}``;
- its custom field ``required_skills`` (the name is configurable), either a mapping
  ``{"postgres": 4}`` or a list of skill names (each needing level 1). Entries that are not a
  skill name with an integer level are ignored; levels are clamped to 1-5.

A ticket that requires nothing is left to the next strategy. Only routable agents count
(switched on, online and within working hours). When skills are required but no online agent
of the team qualifies, the default (``when_nobody = "wait"``) ends the chain with
the ticket unassigned in its team, so a later strategy (round robin) cannot hand a complex
ticket to a junior; ``"pass"`` lets the next strategy decide instead.

Skills are names in lower case with a level from 1 (junior) to 5 (expert); agents get them
with ``app.directory.set_skills(user_id, {"postgres": 4})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from ticketcore import AgentSnapshot, RouteDecision, RoutingContext, Ticket, hookimpl

_NEVER = datetime.min.replace(tzinfo=UTC)
MIN_LEVEL, MAX_LEVEL = 1, 5


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.routing.skills]``."""

    #: Skills each category requires: ``{category: {skill: minimum level}}``.
    categories: dict[str, dict[str, int]] = {}
    #: The custom field a ticket may list its required skills in.
    custom_field: str = "required_skills"
    #: Slug of the team to use when no earlier strategy chose one; None leaves such tickets.
    default_team: str | None = None
    #: Nobody qualifies: ``wait`` ends the chain (ticket stays unassigned in its team),
    #: ``pass`` lets the next strategy decide.
    when_nobody: Literal["wait", "pass"] = "wait"

    def __post_init__(self) -> None:
        for category, skills in self.categories.items():
            for skill, level in skills.items():
                if not MIN_LEVEL <= level <= MAX_LEVEL:
                    raise ValueError(
                        f"categories.{category}.{skill}: level {level} is not from "
                        f"{MIN_LEVEL} to {MAX_LEVEL}"
                    )


def _clamp(level: int) -> int:
    return max(MIN_LEVEL, min(MAX_LEVEL, level))


def _from_field(value: Any) -> dict[str, int]:
    """Required skills written in a custom field: a mapping or a list of names."""
    found: dict[str, int] = {}
    if isinstance(value, Mapping):
        for name, level in value.items():
            if isinstance(name, str) and name.strip() and type(level) is int:
                found[name.strip().lower()] = _clamp(level)
    elif isinstance(value, list):
        for name in value:
            if isinstance(name, str) and name.strip():
                found[name.strip().lower()] = MIN_LEVEL
    return found


def qualifies(agent: AgentSnapshot, required: Mapping[str, int]) -> bool:
    """Whether ``agent`` has every required skill at its level or above."""
    return all(agent.skills.get(skill, 0) >= level for skill, level in required.items())


class Skills:
    """Assigns to the least recently assigned qualified, online agent of the ticket's team."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.categories = {
            category: {skill.strip().lower(): level for skill, level in skills.items()}
            for category, skills in config.categories.items()
        }

    def required(self, ticket: Ticket) -> dict[str, int]:
        """The skills ``ticket`` requires, with minimum levels (empty: none)."""
        needs = dict(self.categories.get(ticket.category or "", {}))
        for skill, level in _from_field(ticket.custom_fields.get(self.config.custom_field)).items():
            needs[skill] = max(level, needs.get(skill, 0))
        return needs

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Pick a qualified agent, or hold the ticket in its team when nobody qualifies."""
        team = context.team_to_staff(ticket, self.config.default_team)
        if team is None:
            return None
        team_id = team.id
        needs = self.required(ticket)
        if not needs:
            return None
        wanted = ", ".join(f"{skill} >= {level}" for skill, level in sorted(needs.items()))
        qualified = [a for a in team.agents if a.routable and qualifies(a, needs)]
        if not qualified:
            if self.config.when_nobody == "pass":
                return None
            return RouteDecision(
                team_id=team_id,
                final=True,
                reason=f"no online agent in {team.name} has {wanted}: left unassigned",
            )
        agent = min(qualified, key=lambda a: (a.last_assigned_at or _NEVER, a.id))
        return RouteDecision(
            team_id=team_id,
            assignee_id=agent.id,
            reason=(
                f"skills in {team.name}: {agent.name} has {wanted} and was assigned least recently"
            ),
        )


def create(config: Config) -> Skills:
    """Entry point factory: build the plugin from its validated settings."""
    return Skills(config)

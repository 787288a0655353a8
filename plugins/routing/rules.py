"""Rules: send a ticket to a team by its category or by keywords in its text."""

from __future__ import annotations

import re

import msgspec

from ticketcore import RouteDecision, RoutingContext, Ticket, hookimpl


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One rule: when any condition matches, route to ``team`` (a team slug)."""

    name: str
    team: str
    categories: list[str] = []
    keywords: list[str] = []
    channels: list[str] = []


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.routing.rules]``: rules tried in order, first match wins."""

    rules: list[Rule] = []


class _Compiled(msgspec.Struct, frozen=True):
    rule: Rule
    patterns: list[tuple[str, re.Pattern[str]]]


class Rules:
    """Routes by the first matching rule, recording which rule and why."""

    def __init__(self, config: Config) -> None:
        # Keywords match whole words, case-insensitively, in any language.
        self.rules = [
            _Compiled(
                rule,
                [(k, re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", re.I)) for k in rule.keywords],
            )
            for rule in config.rules
        ]

    def match(self, ticket: Ticket) -> tuple[Rule, str] | None:
        """The first rule that matches the ticket, with what matched."""
        text = f"{ticket.subject}\n{ticket.description}"
        for compiled in self.rules:
            rule = compiled.rule
            if ticket.category and ticket.category in rule.categories:
                return rule, f"category {ticket.category!r}"
            if ticket.channel in rule.channels:
                return rule, f"channel {ticket.channel!r}"
            for keyword, pattern in compiled.patterns:
                if pattern.search(text):
                    return rule, f"keyword {keyword!r}"
        return None

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Set the team of the first matching rule; leave the agent to later strategies."""
        if ticket.team_id is not None:
            return None
        found = self.match(ticket)
        if found is None:
            return None
        rule, why = found
        team_id = context.team_slugs.get(rule.team)
        if team_id is None:
            return None
        return RouteDecision(
            team_id=team_id,
            reason=f"routed to {context.teams[team_id].name} by rule {rule.name!r} ({why})",
        )


def create(config: Config) -> Rules:
    """Entry point factory: build the plugin from its validated settings."""
    return Rules(config)

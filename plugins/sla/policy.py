"""SLA policy: targets by priority, category, channel, customer tier, VIP or organisation,
counted in business hours, with warnings and escalation chains.

Rules are tried in order and the first that matches a ticket sets its targets, so put the
stricter contracts (VIP, an organisation's) first. A rule's ``match`` lists, per field, the
values it accepts (any of them; fields left out accept everything; all listed fields must
match). Durations are written ``"30m"``, ``"4h"``, ``"2d"`` or ``"1h30m"`` of *business*
time in the rule's calendar. A warning fires when ``warning_share`` of a target's time has
run, and a breach at its due time; ``escalations`` say which steps then run::

    [plugins]
    sla = ["policy"]

    [plugin.sla.policy]
    warning_share = 0.75
    calendar = { timezone = "Europe/Paris", hours = { mon = ["09:00-18:00"], ... } }
    calendars = { always = { hours = "24x7" } }
    team_leads = { support = "lead@example.org" }

    [[plugin.sla.policy.rules]]
    name = "vip-critical"
    match = { vip = true, priority = ["critical"] }
    first_response = "10m"
    resolution = "30m"
    calendar = "always"

    [[plugin.sla.policy.rules]]
    name = "critical"
    match = { priority = ["critical"] }
    first_response = "15m"
    next_response = "30m"
    resolution = "30m"
    calendar = "always"

    [[plugin.sla.policy.rules]]
    name = "standard"
    first_response = "4h"
    next_response = "8h"
    resolution = "3d"

    [[plugin.sla.policy.escalations]]
    stage = "breach"
    targets = ["resolution"]
    rules = ["critical", "vip-critical"]
    steps = [
        { notify = ["assignee"] },
        { notify = ["team_lead"] },
        { name = "IT manager", notify = ["it-manager@example.org"] },
        { raise_priority = "critical" },
        { reassign_team = "senior" },
    ]

In ``notify``, ``"assignee"`` is the ticket's agent and ``"team_lead"`` the address that
``team_leads`` gives for the ticket's team (by slug); anything else is an e-mail address.
The clock pauses while the ticket waits on the customer or is on hold (the core keeps the
pauses; see ``compute_sla``). Holidays come from the ``holidays`` package or an iCalendar
file (``calendar.holidays``); the calendars are built once, at start-up.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec

from ticketcore import (
    EscalationStep,
    Priority,
    SlaAlert,
    SlaTargets,
    Status,
    Ticket,
    hookimpl,
)

from .business_hours import BusinessCalendar, CalendarConfig, Pause, deadline_with_pauses

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]
Target = Literal["first_response", "next_response", "resolution"]
TARGETS: tuple[Target, ...] = ("first_response", "next_response", "resolution")
DEFAULT_CALENDAR = "default"


def parse_duration(text: str) -> timedelta:
    """``"1d"``, ``"4h"``, ``"30m"``, ``"1h30m"`` (days of 24 business hours) as a timedelta."""
    found = _DURATION.match(text)
    if not found or not any(found.groups()):
        raise ValueError(f"a duration looks like '30m', '4h', '2d' or '1h30m', got {text!r}")
    days, hours, minutes = (int(g or 0) for g in found.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes)
    if value <= timedelta(0):
        raise ValueError(f"a duration must be longer than zero, got {text!r}")
    return value


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class Match(_Strict, frozen=True):
    """Which tickets a rule applies to; every field given must match (any listed value)."""

    priority: list[Priority] = []
    category: list[str] = []
    channel: list[str] = []
    #: Values of the customer-tier custom field (``tier_field``), e.g. ``["gold"]``.
    tier: list[str] = []
    #: Organisation names of the requester.
    organisation: list[str] = []
    #: True: only VIP requesters (the contact or its organisation); false: only others.
    vip: bool | None = None

    def matches(self, ticket: Ticket, tier_field: str) -> bool:
        """Whether ``ticket`` satisfies every condition given."""
        requester = ticket.requester
        tier = ticket.custom_fields.get(tier_field)
        return (
            (not self.priority or ticket.priority in self.priority)
            and (not self.category or ticket.category in self.category)
            and (not self.channel or ticket.channel in self.channel)
            and (not self.tier or (isinstance(tier, str) and tier in self.tier))
            and (not self.organisation or requester.organisation in self.organisation)
            and (self.vip is None or requester.vip is self.vip)
        )


class Rule(_Strict, frozen=True):
    """Targets for the tickets a ``match`` selects."""

    name: str
    match: Match = Match()
    first_response: str | None = None
    next_response: str | None = None
    resolution: str | None = None
    #: A name in ``calendars``; the policy's ``calendar`` by default.
    calendar: str = DEFAULT_CALENDAR
    #: Overrides the policy's ``warning_share`` for this rule.
    warning_share: Share | None = None

    def __post_init__(self) -> None:
        for target in TARGETS:
            value = getattr(self, target)
            if value is not None:
                parse_duration(value)
        if not any(getattr(self, target) for target in TARGETS):
            raise ValueError(f"rule {self.name!r} sets no target")

    def target(self, name: Target) -> timedelta | None:
        """The business time allowed for target ``name`` (None: not tracked)."""
        value: str | None = getattr(self, name)
        return parse_duration(value) if value else None


class Step(_Strict, frozen=True):
    """One escalation step: exactly one of ``notify``, ``raise_priority``,
    ``reassign_team``."""

    name: str = ""
    notify: list[str] = []
    raise_priority: Priority | None = None
    reassign_team: str | None = None

    def __post_init__(self) -> None:
        actions = [bool(self.notify), self.raise_priority is not None, bool(self.reassign_team)]
        if sum(actions) != 1:
            raise ValueError(
                "an escalation step does exactly one thing: notify, raise_priority or reassign_team"
            )


class Escalation(_Strict, frozen=True):
    """Steps to run when a target of a matching ticket reaches ``stage``."""

    stage: Literal["warning", "breach"]
    steps: list[Step]
    #: Targets this chain is for; all by default.
    targets: list[Target] = []
    #: Names of the rules this chain is for; all by default.
    rules: list[str] = []


def _default_calendar() -> CalendarConfig:
    return CalendarConfig(hours="24x7")


class Config(_Strict, frozen=True):
    """Settings of ``[plugin.sla.policy]``."""

    rules: list[Rule]
    #: The calendar rules use unless they name another (24x7 UTC by default).
    calendar: CalendarConfig = msgspec.field(default_factory=_default_calendar)
    #: More calendars by name, for rules to pick.
    calendars: dict[str, CalendarConfig] = {}
    #: Share of a target's time after which a warning fires.
    warning_share: Share = 0.75
    #: The custom field holding the customer's tier (matched by ``Match.tier``).
    tier_field: str = "tier"
    #: Team slug -> e-mail of its lead, for the ``team_lead`` recipient.
    team_leads: dict[str, str] = {}
    escalations: list[Escalation] = []

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        known = {DEFAULT_CALENDAR, *self.calendars}
        for rule in self.rules:
            if rule.calendar not in known:
                raise ValueError(
                    f"rule {rule.name!r}: unknown calendar {rule.calendar!r}; "
                    f"known: {', '.join(sorted(known))}"
                )
        for escalation in self.escalations:
            unknown = sorted(set(escalation.rules) - set(names))
            if unknown:
                raise ValueError(f"escalation for unknown rule(s): {', '.join(unknown)}")


class SlaPolicy:
    """Computes due times from the first matching rule, and the escalation steps."""

    def __init__(self, config: Config, calendars: dict[str, BusinessCalendar]) -> None:
        self.config = config
        self.calendars = calendars

    def rule_for(self, ticket: Ticket) -> Rule | None:
        """The first rule that matches ``ticket``."""
        for rule in self.config.rules:
            if rule.match.matches(ticket, self.config.tier_field):
                return rule
        return None

    @hookimpl
    def compute_sla(self, ticket: Ticket, now: datetime) -> SlaTargets | None:
        """Due and warning times of the ticket's targets under its rule (None: no rule)."""
        rule = self.rule_for(ticket)
        if rule is None:
            return None
        calendar = self.calendars[rule.calendar]
        share = rule.warning_share or self.config.warning_share
        sla = ticket.sla
        pauses: list[Pause] = list(sla.pauses)
        if sla.paused_since is not None:
            pauses.append((sla.paused_since, None))
        starts: dict[Target, datetime | None] = {
            "first_response": ticket.created_at if ticket.first_response_at is None else None,
            "next_response": sla.awaiting_reply_since,
            "resolution": (
                ticket.created_at if ticket.status not in (Status.RESOLVED, Status.CLOSED) else None
            ),
        }
        times: dict[str, datetime | None] = {}
        for target in TARGETS:
            allowed, start = rule.target(target), starts[target]
            if allowed is None or start is None:
                continue
            times[f"{target}_due"] = deadline_with_pauses(calendar, start, allowed, pauses)
            if share < 1:
                times[f"{target}_warning"] = deadline_with_pauses(
                    calendar, start, allowed * share, pauses
                )
        return SlaTargets(policy=rule.name, **times)

    @hookimpl
    def sla_escalation(self, ticket: Ticket, alert: SlaAlert) -> list[EscalationStep] | None:
        """The steps of every escalation chain for this alert's stage, target and rule, in
        config order, with ``assignee`` and ``team_lead`` resolved to addresses."""
        steps: list[EscalationStep] = []
        for escalation in self.config.escalations:
            if escalation.stage != alert.stage:
                continue
            if escalation.targets and alert.target not in escalation.targets:
                continue
            if escalation.rules and alert.policy not in escalation.rules:
                continue
            steps += [self._resolve(step, alert) for step in escalation.steps]
        return steps or None

    def _resolve(self, step: Step, alert: SlaAlert) -> EscalationStep:
        recipients: list[str] = []
        for who in step.notify:
            if who == "assignee":
                address = alert.assignee_email
            elif who == "team_lead":
                address = self.config.team_leads.get(alert.team_slug or "")
            else:
                address = who
            if address:
                recipients.append(address)
        name = step.name or (", ".join(step.notify) if step.notify else "")
        return EscalationStep(
            name=name,
            notify=recipients,
            raise_priority=step.raise_priority,
            reassign_team=step.reassign_team,
        )


def create(config: Config) -> SlaPolicy:
    """Entry point factory: build the calendars (loads holiday sources once)."""
    calendars = {DEFAULT_CALENDAR: BusinessCalendar.from_config(config.calendar)}
    for name, calendar in config.calendars.items():
        calendars[name] = BusinessCalendar.from_config(calendar)
    return SlaPolicy(config, calendars)

"""The ``policy`` SLA plugin on its own (pure): typed config that refuses unknown keys and bad
values, first-matching rules by priority, category, channel, tier, organisation and VIP,
business-hours deadlines with pauses, warning shares, escalation steps with resolved
recipients, and loading through its ``ticketcore.sla`` entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from ticketcore import (
    ConfigError,
    Contact,
    Priority,
    SlaAlert,
    Status,
    Ticket,
    TicketSla,
)
from ticketcore.config import settings_from_mapping
from ticketcore.plugin_manager import build_plugin_manager
from ticketcore.plugins.sla import policy

MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday

RULES: list[dict[str, Any]] = [
    {
        "name": "vip-critical",
        "match": {"vip": True, "priority": ["critical"]},
        "first_response": "10m",
        "resolution": "20m",
        "calendar": "always",
    },
    {
        "name": "critical",
        "match": {"priority": ["critical"]},
        "first_response": "15m",
        "next_response": "30m",
        "resolution": "30m",
        "calendar": "always",
    },
    {"name": "gold", "match": {"tier": ["gold"]}, "first_response": "1h", "resolution": "8h"},
    {"name": "acme", "match": {"organisation": ["ACME"]}, "resolution": "2d"},
    {
        "name": "billing-mail",
        "match": {"category": ["billing"], "channel": ["email"]},
        "first_response": "2h",
    },
    {"name": "standard", "first_response": "4h", "next_response": "8h", "resolution": "3d"},
]


def config(**more: Any) -> dict[str, Any]:
    return {
        "rules": RULES,
        "calendar": {"timezone": "UTC", "hours": {d: ["09:00-17:00"] for d in WEEKDAYS}},
        "calendars": {"always": {"hours": "24x7"}},
        **more,
    }


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def make(**more: Any) -> policy.SlaPolicy:
    return policy.create(msgspec.convert(config(**more), policy.Config))


def ticket(
    priority: Priority = Priority.NORMAL,
    *,
    vip: bool = False,
    organisation: str | None = None,
    category: str | None = None,
    channel: str = "api",
    tier: str | None = None,
    created_at: datetime = MONDAY_9,
    status: Status = Status.NEW,
    sla: TicketSla | None = None,
    first_response_at: datetime | None = None,
) -> Ticket:
    return Ticket(
        id=7,
        key="k",
        subject="Server outage",
        status=status,
        priority=priority,
        category=category,
        channel=channel,
        requester=Contact(id=1, name="Carol", organisation=organisation, vip=vip),
        team_id=None,
        assignee_id=None,
        tags=[],
        custom_fields={"tier": tier} if tier else {},
        version=1,
        created_at=created_at,
        updated_at=created_at,
        first_response_at=first_response_at,
        sla=sla or TicketSla(),
    )


# --- config ---------------------------------------------------------------------------------


def test_config_refuses_unknown_keys_bad_durations_and_unknown_names() -> None:
    def bad(data: dict[str, Any], message: str) -> None:
        with pytest.raises(msgspec.ValidationError, match=message):
            msgspec.convert(data, policy.Config)

    bad(config(colour="red"), "unknown field `colour`")
    bad({"rules": [{"name": "x", "resolution": "4h", "priorty": {}}]}, "unknown field `priorty`")
    bad({"rules": [{"name": "x", "match": {"prio": ["low"]}, "resolution": "1h"}]}, "`prio`")
    bad({"rules": [{"name": "x", "resolution": "4 hours"}]}, "a duration looks like")
    bad({"rules": [{"name": "x", "resolution": "0m"}]}, "longer than zero")
    bad({"rules": [{"name": "x"}]}, "sets no target")
    bad({"rules": [{"name": "x", "resolution": "1h", "calendar": "nope"}]}, "unknown calendar")
    bad({"rules": [{"name": "x", "resolution": "1h"}] * 2}, "unique")
    bad({"rules": [{"name": "x", "match": {"priority": ["urgent"]}, "resolution": "1h"}]}, "urgent")
    bad(config(warning_share=1.5), "<= 1")
    bad(config(escalations=[{"stage": "breach", "steps": [{}]}]), "exactly one thing")
    bad(
        config(escalations=[{"stage": "breach", "steps": [{"notify": ["a@b"]}], "rules": ["z"]}]),
        "unknown rule",
    )
    bad(config(calendar={"hours": {"mon": ["9-5"]}}), "opening hours must look like")


def test_durations() -> None:
    assert policy.parse_duration("30m") == timedelta(minutes=30)
    assert policy.parse_duration("1h30m") == timedelta(minutes=90)
    assert policy.parse_duration("2d") == timedelta(days=2)
    assert policy.parse_duration(" 1d 2h ") == timedelta(hours=26)


def test_the_plugin_loads_through_its_entry_point_and_bad_settings_stop_start_up() -> None:
    settings = settings_from_mapping(
        {"plugins": {"sla": ["policy"]}, "plugin": {"sla": {"policy": config()}}}, env={}
    )
    _pm, loaded = build_plugin_manager(settings)
    assert [(p.kind, p.name) for p in loaded] == [("sla", "policy")]
    assert loaded[0].hooks == ["compute_sla", "sla_escalation"]
    with pytest.raises(ConfigError, match=r"plugin\.sla\.policy: unknown setting"):
        build_plugin_manager(
            settings_from_mapping(
                {"plugins": {"sla": ["policy"]}, "plugin": {"sla": {"policy": config(x=1)}}},
                env={},
            )
        )


# --- rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"priority": Priority.CRITICAL, "vip": True}, "vip-critical"),
        ({"priority": Priority.CRITICAL}, "critical"),
        ({"tier": "gold", "organisation": "ACME"}, "gold"),
        ({"tier": "silver", "organisation": "ACME"}, "acme"),
        ({"category": "billing", "channel": "email"}, "billing-mail"),
        ({"category": "billing", "channel": "web"}, "standard"),
        ({}, "standard"),
    ],
)
def test_first_matching_rule_wins(kwargs: dict[str, Any], rule: str) -> None:
    sla = make().compute_sla(ticket=ticket(**kwargs), now=MONDAY_9)
    assert sla is not None and sla.policy == rule


def test_a_vip_contract_is_stricter() -> None:
    plugin = make()
    vip = plugin.compute_sla(ticket=ticket(Priority.CRITICAL, vip=True), now=MONDAY_9)
    other = plugin.compute_sla(ticket=ticket(Priority.CRITICAL), now=MONDAY_9)
    assert vip is not None and other is not None
    assert vip.resolution_due == MONDAY_9 + timedelta(minutes=20)
    assert other.resolution_due == MONDAY_9 + timedelta(minutes=30)
    assert vip.first_response_due is not None and other.first_response_due is not None
    assert vip.first_response_due < other.first_response_due


def test_no_rule_no_sla() -> None:
    plugin = make(rules=[{"name": "only-critical", "match": {"priority": ["critical"]},
                          "resolution": "1h"}])  # fmt: skip
    assert plugin.compute_sla(ticket=ticket(), now=MONDAY_9) is None


# --- deadlines ------------------------------------------------------------------------------


def test_business_hours_weekend_and_warning_share() -> None:
    friday_16 = datetime(2026, 1, 9, 16, 0, tzinfo=UTC)
    sla = make().compute_sla(ticket=ticket(created_at=friday_16), now=friday_16)
    assert sla is not None and sla.policy == "standard"
    # 4 business hours from Friday 16:00 (open 09-17): 1h on Friday, 3h on Monday.
    assert sla.first_response_due == datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
    # 75 % of 4h = 3h: Monday 11:00.
    assert sla.first_response_warning == datetime(2026, 1, 12, 11, 0, tzinfo=UTC)
    # 3d = 72 business hours = 9 days of 8 hours.
    assert sla.resolution_due == datetime(2026, 1, 22, 16, 0, tzinfo=UTC)
    assert sla.next_response_due is None  # no customer message waiting


def test_pauses_push_the_deadline_and_an_open_pause_hides_it() -> None:
    plugin = make()
    t = ticket(Priority.CRITICAL)
    base = plugin.compute_sla(ticket=t, now=MONDAY_9)
    assert base is not None and base.resolution_due == MONDAY_9 + timedelta(minutes=30)
    paused = TicketSla(paused_since=MONDAY_9 + timedelta(minutes=10))
    during = plugin.compute_sla(ticket=msgspec.structs.replace(t, sla=paused), now=MONDAY_9)
    assert during is not None and during.resolution_due is None  # unknown while paused
    resumed = TicketSla(
        pauses=[(MONDAY_9 + timedelta(minutes=10), MONDAY_9 + timedelta(hours=2, minutes=10))]
    )
    after = plugin.compute_sla(ticket=msgspec.structs.replace(t, sla=resumed), now=MONDAY_9)
    assert after is not None
    assert after.resolution_due == MONDAY_9 + timedelta(hours=2, minutes=30)
    # Reached before the pause began: the (past) due time stays known, so it breaches.
    late = TicketSla(paused_since=MONDAY_9 + timedelta(hours=1))
    breached = plugin.compute_sla(ticket=msgspec.structs.replace(t, sla=late), now=MONDAY_9)
    assert breached is not None
    assert breached.resolution_due == MONDAY_9 + timedelta(minutes=30)


def test_met_and_finished_targets_are_not_tracked() -> None:
    plugin = make()
    answered = ticket(Priority.CRITICAL, first_response_at=MONDAY_9 + timedelta(minutes=5))
    sla = plugin.compute_sla(ticket=answered, now=MONDAY_9)
    assert sla is not None and sla.first_response_due is None and sla.resolution_due
    waiting = msgspec.structs.replace(
        answered, sla=TicketSla(awaiting_reply_since=MONDAY_9 + timedelta(minutes=40))
    )
    sla = plugin.compute_sla(ticket=waiting, now=MONDAY_9)
    assert sla is not None
    assert sla.next_response_due == MONDAY_9 + timedelta(minutes=70)
    assert sla.next_response_warning == MONDAY_9 + timedelta(minutes=62, seconds=30)
    done = msgspec.structs.replace(answered, status=Status.RESOLVED)
    sla = plugin.compute_sla(ticket=done, now=MONDAY_9)
    assert sla is not None and sla.resolution_due is None


# --- escalation -----------------------------------------------------------------------------


def test_escalation_steps_for_the_stage_target_and_rule_with_resolved_recipients() -> None:
    plugin = make(
        team_leads={"support": "lead@example.org"},
        escalations=[
            {
                "stage": "breach",
                "targets": ["resolution"],
                "rules": ["critical"],
                "steps": [
                    {"notify": ["assignee"]},
                    {"notify": ["team_lead"]},
                    {"name": "IT manager", "notify": ["it-manager@example.org"]},
                    {"raise_priority": "critical"},
                    {"reassign_team": "senior"},
                ],
            },
            {"stage": "warning", "steps": [{"notify": ["assignee"]}]},
        ],
    )
    t = ticket(Priority.CRITICAL)
    alert = SlaAlert(
        ticket_id=7,
        policy="critical",
        target="resolution",
        stage="breach",
        due_at=MONDAY_9,
        team_slug="support",
        assignee_email="alex@example.org",
    )
    steps = plugin.sla_escalation(ticket=t, alert=alert)
    assert steps is not None
    assert [(s.action, s.name, s.notify) for s in steps] == [
        ("notify", "assignee", ["alex@example.org"]),
        ("notify", "team_lead", ["lead@example.org"]),
        ("notify", "IT manager", ["it-manager@example.org"]),
        ("raise_priority", "", []),
        ("reassign_team", "", []),
    ]
    assert steps[3].raise_priority is Priority.CRITICAL and steps[4].reassign_team == "senior"
    other_rule = msgspec.structs.replace(alert, policy="standard")
    assert plugin.sla_escalation(ticket=t, alert=other_rule) is None
    first_response = msgspec.structs.replace(alert, target="first_response")
    assert plugin.sla_escalation(ticket=t, alert=first_response) is None
    unassigned = msgspec.structs.replace(alert, stage="warning", assignee_email=None)
    (step,) = plugin.sla_escalation(ticket=t, alert=unassigned) or []
    assert step.notify == []  # nobody to tell: the host records the step as skipped

"""Routing strategies ``skills`` and ``least_loaded``, agent availability (online, away,
offline) respected by every strategy including ``round_robin``, the snapshot the host loads
(skills, open-ticket counts, kept current within a batch), migration 0002, concurrent routing
from two helpdesks on one PostgreSQL database, and the seed's scenario end to end through the
API: a VIP's French e-mail about a failing card lands in billing, priority raised, routed to
the Billing team and an agent, each step with its reason in the history. Both engines."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ticketcore import Priority, Ticket
from ticketcore.app import App, create_helpdesk
from ticketcore.clock import FrozenClock
from ticketcore.db.migrations import MIGRATIONS
from ticketcore.db.tables import OPEN_TICKET_SQL
from ticketcore.domain.commands import NewTicket, NewUser, RequesterInput
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal, TicketEvent, WorkingHours
from ticketcore.errors import ConfigError, NotFound, ValidationFailed
from ticketcore.services import ticket_writer
from ticketcore.services.routing import load_routing_context
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


def settings(
    routing: list[str], plugins: list[str] | None = None, **config: dict[str, Any]
) -> dict[str, Any]:
    """Settings overrides enabling ``routing`` strategies (and other ``plugins``) with
    per-plugin ``config`` given by name."""
    routing_config = {name: config[name] for name in routing if name in config}
    other_config = {name: config[name] for name in plugins or [] if name in config}
    return {
        "plugins": {"routing": routing, "plugins": plugins or []},
        "plugin": {"routing": routing_config, "plugins": other_config},
    }


async def add_team(app: App, name: str, slug: str, agents: list[str]) -> tuple[int, list[int]]:
    """A team with one agent per name; return its id and the agent ids, in order."""
    team_id = await app.directory.create_team(name, slug)
    ids = []
    for agent in agents:
        user = await app.auth.create_user(
            NewUser(
                email=f"{agent.lower()}@{slug}.example",
                name=agent,
                role=Role.AGENT,
                team_ids=[team_id],
            )
        )
        ids.append(user.id)
    return team_id, ids


async def open_ticket(
    app: App, subject: str = "Help", **fields: Any
) -> tuple[Ticket, list[TicketEvent]]:
    """Create a ticket as the system; return it with its history."""
    ticket = await app.tickets.create(
        SYSTEM,
        NewTicket(subject=subject, requester=RequesterInput(email="client@example.org"), **fields),
    )
    return ticket, await app.tickets.events(SYSTEM, ticket.id)


def routed(history: list[TicketEvent]) -> list[TicketEvent]:
    return [e for e in history if e.kind in ("routed", "routing_rejected")]


# --- agent data and the routing snapshot ---------------------------------------------------


async def test_snapshot_carries_availability_skills_and_open_counts(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**settings(["round_robin"]))
    team, (ann, bob) = await add_team(app, "Ops", "ops", ["Ann", "Bob"])
    other, _ = await add_team(app, "Other", "other", [])
    await app.directory.add_member(other, ann)
    await app.directory.set_skills(ann, {"Postgres": 4, "linux": 2})
    await app.directory.set_availability(bob, "away")
    await app.directory.set_capacity(ann, 3)
    for i, status in enumerate(["new", "open", "pending_customer", "on_hold", "resolved"]):
        t, _ = await open_ticket(app, f"T{i}", team_id=team, assignee_id=ann)
        await app.db.fetch("UPDATE ticket SET status = {} WHERE id = {}", status, t.id)
    await open_ticket(app, "closed one", team_id=team, assignee_id=bob)
    await app.db.fetch("UPDATE ticket SET status = 'closed' WHERE assignee = {}", bob)

    async with app.db.transaction():
        context = await load_routing_context(app, app.clock.now())
    agents = {a.id: a for a in context.teams[team].agents}
    assert agents[ann].skills == {"postgres": 4, "linux": 2}
    assert (agents[ann].availability, agents[ann].routable) == ("online", True)
    assert (agents[bob].availability, agents[bob].routable) == ("away", False)
    assert agents[ann].capacity == 3 and agents[bob].capacity is None
    assert agents[ann].open_tickets == 4  # resolved does not count
    assert agents[bob].open_tickets == 0
    # The same agent in another team: same skills and load.
    [ann_elsewhere] = context.teams[other].agents
    assert (ann_elsewhere.open_tickets, ann_elsewhere.skills) == (4, agents[ann].skills)
    assert await app.directory.skills(ann) == {"linux": 2, "postgres": 4}


async def test_agent_settings_are_validated(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory()
    seed = await seed_helpdesk(app)
    with pytest.raises(ValidationFailed, match="availability must be one of"):
        await app.directory.set_availability(seed.agent.id, "busy")
    with pytest.raises(ValidationFailed, match="from 1 to 5"):
        await app.directory.set_skills(seed.agent.id, {"postgres": 6})
    with pytest.raises(ValidationFailed, match="negative"):
        await app.directory.set_capacity(seed.agent.id, -1)
    with pytest.raises(NotFound):
        await app.directory.set_availability(seed.customer.id, "online")
    await app.directory.set_skills(seed.agent.id, {"a": 1})
    await app.directory.set_skills(seed.agent.id, {"b": 2})  # replaces
    assert await app.directory.skills(seed.agent.id) == {"b": 2}


async def test_migration_0002_upgrades_an_older_database(
    helpdesk_factory: HelpdeskFactory, db_url: str
) -> None:
    """A database migrated before 0002 and 0003 existed (no availability or working hours
    columns, no skills table)."""
    first = await helpdesk_factory()
    seed = await seed_helpdesk(first)
    async with first.db.transaction():
        await first.db.fetch("DROP TABLE agent_skill")
        await first.db.execute_ddl("ALTER TABLE app_user DROP COLUMN availability")
        await first.db.execute_ddl("ALTER TABLE app_user DROP COLUMN working_hours")
        await first.db.fetch("DELETE FROM schema_version WHERE version IN (2, 3)")
        await first.db.fetch(
            "UPDATE app_user SET available = {} WHERE id = {}", False, seed.agent2.id
        )
    await first.stop()
    second = await helpdesk_factory(**settings(["round_robin"]))
    rows = await second.db.fetch("SELECT id, availability FROM app_user ORDER BY id")
    states = {row["id"]: row["availability"] for row in rows}
    assert states[seed.agent.id] == "online"
    assert states[seed.agent2.id] == "offline"  # switched off before: starts offline
    await second.directory.set_skills(seed.agent.id, {"postgres": 3})
    versions = await second.db.fetch("SELECT version FROM schema_version ORDER BY version")
    assert [row["version"] for row in versions] == [version for version, _, _ in MIGRATIONS]


# --- availability in every strategy ---------------------------------------------------------

STRATEGIES: dict[str, dict[str, Any]] = {
    "round_robin": {"default_team": "ops"},
    "skills": {"default_team": "ops", "categories": {"db": {"postgres": 1}}},
    "least_loaded": {"default_team": "ops"},
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_away_and_offline_agents_get_nothing(
    helpdesk_factory: HelpdeskFactory, strategy: str
) -> None:
    app = await helpdesk_factory(**settings([strategy], **{strategy: STRATEGIES[strategy]}))
    _, (ann, bob, cid) = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    for agent in (ann, bob, cid):
        await app.directory.set_skills(agent, {"postgres": 3})
    await app.directory.set_availability(bob, "away")
    await app.directory.set_availability(cid, "offline")
    assignees = {(await open_ticket(app, f"T{i}", category="db"))[0].assignee_id for i in range(4)}
    assert assignees == {ann}
    await app.directory.set_availability(ann, "away")
    nobody, history = await open_ticket(app, "Nobody", category="db")
    assert nobody.assignee_id is None
    assert all("assignee_id" not in e.changes for e in routed(history))
    await app.directory.set_availability(cid, "online")
    back, _ = await open_ticket(app, "Back", category="db")
    assert back.assignee_id == cid


# --- skills -----------------------------------------------------------------------------------


def skills_settings(**config: Any) -> dict[str, Any]:
    return settings(
        ["rules", "skills", "round_robin"],
        rules={"rules": [{"name": "outage", "team": "it-ops", "keywords": ["server down"]}]},
        skills={"categories": {"database": {"postgres": 4}}, **config},
        round_robin={},
    )


async def test_skills_never_go_below_the_required_level(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**skills_settings())
    team, (junior, senior, expert) = await add_team(
        app, "IT operations", "it-ops", ["Junior", "Senior", "Expert"]
    )
    await app.directory.set_skills(junior, {"postgres": 2, "linux": 2})
    await app.directory.set_skills(senior, {"postgres": 4})
    await app.directory.set_skills(expert, {"postgres": 5, "linux": 4})

    seen = [
        (await open_ticket(app, "server down", category="database"))[0].assignee_id
        for _ in range(4)
    ]
    assert Counter(seen) == {senior: 2, expert: 2}  # qualified ones, in rotation
    ticket, history = await open_ticket(app, "server down", category="database")
    by_skills = routed(history)[1]
    assert by_skills.data["plugin"] == "routing.skills"
    assert "postgres >= 4" in by_skills.data["reason"]
    assert ticket.team_id == team

    # Required skills from the ticket itself, merged with the category's (higher wins).
    both, _ = await open_ticket(
        app,
        "server down",
        category="database",
        custom_fields={"required_skills": {"linux": 3, "postgres": 1}},
    )
    assert both.assignee_id == expert
    listed, _ = await open_ticket(app, "server down", custom_fields={"required_skills": ["linux"]})
    assert listed.assignee_id in (junior, expert)

    # Nobody qualified online: the ticket waits in the team; round robin does not run.
    await app.directory.set_availability(expert, "offline")
    waiting, history = await open_ticket(
        app, "server down", custom_fields={"required_skills": {"linux": 4}}
    )
    assert (waiting.team_id, waiting.assignee_id) == (team, None)
    assert [e.data["plugin"] for e in routed(history)] == ["routing.rules", "routing.skills"]
    assert "no online agent in IT operations has linux >= 4" in routed(history)[1].data["reason"]

    # A ticket that requires nothing is left to round robin (anyone, juniors included).
    plain, history = await open_ticket(app, "server down")
    assert plain.assignee_id in (junior, senior)
    assert routed(history)[-1].data["plugin"] == "routing.round_robin"


async def test_skills_pass_lets_the_next_strategy_decide(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**skills_settings(when_nobody="pass"))
    _, (junior,) = await add_team(app, "IT operations", "it-ops", ["Junior"])
    ticket, history = await open_ticket(app, "server down", category="database")
    assert ticket.assignee_id == junior
    assert routed(history)[-1].data["plugin"] == "routing.round_robin"


async def test_bad_skills_config_stops_start_up(helpdesk_factory: HelpdeskFactory) -> None:
    with pytest.raises(ConfigError, match="level 9"):
        await helpdesk_factory(
            **settings(["skills"], skills={"categories": {"db": {"postgres": 9}}})
        )


# --- least loaded ---------------------------------------------------------------------------


async def test_least_loaded_uses_load_against_capacity(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(
        **settings(["least_loaded"], least_loaded={"default_team": "ops", "default_capacity": 4})
    )
    team, (ann, bob, cid) = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    await app.directory.set_capacity(ann, 10)
    await app.directory.set_capacity(cid, 0)  # takes nothing
    for _ in range(4):  # Ann 4/10 = 0.4
        await open_ticket(app, team_id=team, assignee_id=ann)
    for _ in range(1):  # Bob 1/4 = 0.25
        await open_ticket(app, team_id=team, assignee_id=bob)
    first, history = await open_ticket(app)
    assert first.assignee_id == bob  # 0.25 < 0.4
    assert routed(history)[0].data["reason"] == "least loaded in Ops: Bob has 1 open of 4"
    second, _ = await open_ticket(app)  # Bob 2/4 = 0.5 > Ann 0.4
    assert second.assignee_id == ann
    # Resolved tickets free capacity.
    await app.db.fetch("UPDATE ticket SET status = 'resolved' WHERE assignee = {}", ann)
    third, _ = await open_ticket(app)
    assert third.assignee_id == ann  # 0/10


async def test_least_loaded_never_exceeds_capacity_within_a_batch(
    helpdesk_factory: HelpdeskFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await helpdesk_factory(
        **settings(["least_loaded"], least_loaded={"default_team": "ops", "default_capacity": 2})
    )
    _, (ann, bob) = await add_team(app, "Ops", "ops", ["Ann", "Bob"])
    loads: list[int] = []

    async def counted(app: App, now: Any) -> Any:
        loads.append(1)
        return await load_routing_context(app, now)

    monkeypatch.setattr(ticket_writer, "load_routing_context", counted)
    # Created concurrently, these share write batches: one snapshot routes them all.
    tickets = await asyncio.gather(
        *[
            app.tickets.create(
                SYSTEM, NewTicket(subject=f"T{i}", requester=RequesterInput(email="c@x.example"))
            )
            for i in range(7)
        ]
    )
    counts = Counter(t.assignee_id for t in tickets)
    assert counts == {ann: 2, bob: 2, None: 3}
    assert 1 <= len(loads) < len(tickets)  # batched: one snapshot served several tickets


async def test_least_loaded_wait_holds_the_ticket(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(
        **settings(
            ["least_loaded", "round_robin"],
            least_loaded={"default_team": "ops", "default_capacity": 0, "when_full": "wait"},
        )
    )
    team, _ = await add_team(app, "Ops", "ops", ["Ann"])
    ticket, history = await open_ticket(app)
    assert (ticket.team_id, ticket.assignee_id) == (team, None)
    assert [e.data["plugin"] for e in routed(history)] == ["routing.least_loaded"]
    assert "at capacity" in routed(history)[0].data["reason"]


# --- round robin across two helpdesks on one PostgreSQL database -----------------------------


async def test_round_robin_is_fair_across_two_processes_on_postgres(
    helpdesk_factory: HelpdeskFactory, db_engine: str, settings_factory: Callable[..., Any]
) -> None:
    if db_engine != "postgres":
        pytest.skip("SQLite has one writer process by design")
    config = settings(["round_robin"], round_robin={"default_team": "ops"})
    first = await helpdesk_factory(**config)
    _, agents = await add_team(first, "Ops", "ops", ["Ann", "Bob", "Cid"])
    # A second helpdesk with its own connection pool stands for a second worker process.
    second = create_helpdesk(settings_factory(**config), clock=first.clock)
    await second.start()
    try:

        async def burst(app: App, n: int, tag: str) -> list[int | None]:
            made = await asyncio.gather(
                *[
                    app.tickets.create(
                        SYSTEM,
                        NewTicket(
                            subject=f"{tag}{i}", requester=RequesterInput(email="c@x.example")
                        ),
                    )
                    for i in range(n)
                ]
            )
            return [t.assignee_id for t in made]

        a, b = await asyncio.gather(burst(first, 16, "a"), burst(second, 17, "b"))
    finally:
        await second.stop()
    counts = Counter(a + b)
    assert set(counts) == set(agents)
    assert max(counts.values()) - min(counts.values()) <= 1, counts


# --- the seed's scenario --------------------------------------------------------------------


async def test_seed_scenario_vip_card_failure_lands_in_billing(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(
        **settings(
            ["rules", "round_robin"],
            plugins=["triage_rules", "directory_vip"],
            triage_rules={
                "rules": [
                    {
                        "name": "passwords",
                        "keywords": ["mot de passe", "password reset"],
                        "category": "account/password",
                    },
                    {
                        "name": "payments",
                        "keywords": ["payment failed", "carte bancaire", "paiement refusé"],
                        "category": "billing",
                    },
                ]
            },
            directory_vip={"raise_to": "high"},
            rules={
                "rules": [
                    {"name": "billing", "team": "billing", "categories": ["billing"]},
                    {"name": "outage", "team": "it-ops", "keywords": ["server down"]},
                ]
            },
            round_robin={"default_team": "support"},
        )
    )
    seed = await seed_helpdesk(app)
    billing, billing_agents = await add_team(app, "Billing", "billing", ["Bea", "Ben"])
    await add_team(app, "IT operations", "it-ops", ["Ivan"])
    bank = await app.directory.create_organisation("Banque Royale", "banque.example", vip=True)
    await app.db.fetch(
        "UPDATE contact SET organisation = {} WHERE id = {}", bank, seed.customer.contact_id
    )

    async with api_client(app) as api:
        created = await api.post(
            "/api/v1/tickets",
            headers=seed.headers("customer"),
            json={
                "subject": "Ma carte bancaire échoue constamment",
                "body": "Ma carte bancaire échoue constamment",
                "channel": "email",
            },
        )
        assert created.status_code == 201, created.text
        ticket = created.json()
        events = (
            await api.get(f"/api/v1/tickets/{ticket['id']}/events", headers=seed.headers("agent"))
        ).json()

    assert ticket["category"] == "billing"
    assert ticket["priority"] == Priority.HIGH
    assert ticket["channel"] == "email"
    assert ticket["team_id"] == billing
    assert ticket["assignee_id"] in billing_agents
    assert [e["kind"] for e in events] == ["created", "classified", "enriched", "routed", "routed"]
    _, classified, enriched, by_rule, by_rotation = events
    assert classified["data"] == {
        "plugin": "plugins.triage_rules",
        "reason": "rule 'payments': keyword 'carte bancaire'",
    }
    assert classified["changes"]["category"] == [None, "billing"]
    assert enriched["data"] == {
        "plugin": "plugins.directory_vip",
        "reason": "VIP requester 'Carol Customer' of 'Banque Royale': "
        "priority raised from normal to high",
    }
    assert enriched["changes"]["priority"] == ["normal", "high"]
    assert by_rule["data"] == {
        "plugin": "routing.rules",
        "reason": "routed to Billing by rule 'billing' (category 'billing')",
    }
    assert by_rule["changes"]["team_id"] == [None, billing]
    assert by_rotation["data"]["plugin"] == "routing.round_robin"
    assert by_rotation["data"]["reason"].startswith("round robin in Billing: ")
    assert by_rotation["changes"]["assignee_id"] == [None, ticket["assignee_id"]]


# --- the routing profile through the API ----------------------------------------------------


async def test_routing_profile_api(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(
        **settings(["round_robin"], round_robin={"default_team": "support"})
    )
    seed = await seed_helpdesk(app)
    url = f"/api/v1/users/{seed.agent.id}/routing"
    async with api_client(app) as api:
        # An agent sets their own presence, and nothing else.
        away = await api.patch(url, headers=seed.headers("agent"), json={"availability": "away"})
        assert away.status_code == 200, away.text
        assert away.json()["availability"] == "away"
        denied = await api.patch(url, headers=seed.headers("agent"), json={"skills": {"x": 5}})
        assert denied.status_code == 403
        other = f"/api/v1/users/{seed.agent2.id}/routing"
        denied = await api.patch(
            other, headers=seed.headers("agent"), json={"availability": "away"}
        )
        assert denied.status_code == 403
        bad = await api.patch(url, headers=seed.headers("agent"), json={"availability": "busy"})
        assert bad.status_code == 422
        # A patch is all or nothing: a bad skill level keeps the availability as it was.
        refused = await api.patch(
            url, headers=seed.headers("admin"), json={"availability": "online", "skills": {"x": 9}}
        )
        assert refused.status_code == 422
        assert (await api.get(url, headers=seed.headers("agent"))).json()["availability"] == "away"
        # Admins set skills and capacity.
        done = await api.patch(
            url,
            headers=seed.headers("admin"),
            json={"skills": {"Postgres": 4}, "capacity": 5},
        )
        assert done.status_code == 200, done.text
        assert {k: done.json()[k] for k in ("skills", "capacity", "availability")} == {
            "skills": {"postgres": 4},
            "capacity": 5,
            "availability": "away",
        }
        assert (await api.get(url, headers=seed.headers("customer"))).status_code == 403
        # Away: tickets go to the other agent; the profile counts open tickets.
        for i in range(2):
            made = await api.post(
                "/api/v1/tickets", headers=seed.headers("customer"), json={"subject": f"T{i}"}
            )
            assert made.json()["assignee_id"] == seed.agent2.id
        profile = (await api.get(other, headers=seed.headers("agent"))).json()
        assert profile == {
            "user_id": seed.agent2.id,
            "available": True,
            "availability": "online",
            "capacity": None,
            "skills": {},
            "open_tickets": 2,
            "working_hours": None,
            "on_shift": True,
        }
        missing = await api.get(
            f"/api/v1/users/{seed.customer.id}/routing", headers=seed.headers("agent")
        )
        assert missing.status_code == 404


async def test_open_ticket_counts_never_scan_the_whole_ticket_table(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    """The per-batch load query reads open tickets through an index, not every ticket ever
    assigned."""
    app = await helpdesk_factory()
    query = (
        "SELECT assignee, COUNT(*) AS n FROM ticket "
        f"WHERE assignee IS NOT NULL AND {OPEN_TICKET_SQL} GROUP BY assignee"
    )
    async with app.db.transaction():
        if app.db.is_sqlite:
            plan = await app.db.fetch(f"EXPLAIN QUERY PLAN {query}")
        else:  # an empty table: make the planner show whether it can use an index at all
            await app.db.fetch("SET LOCAL enable_seqscan = off")
            plan = await app.db.fetch(f"EXPLAIN {query}")
    text = " ".join(str(v) for row in plan for v in row.values())
    assert "SCAN ticket" not in text and "Seq Scan" not in text, text
    assert "INDEX" in text.upper(), text


# --- working hours --------------------------------------------------------------------------

PARIS_WEEKDAYS = {
    "timezone": "Europe/Paris",
    "week": {day: [["09:00", "12:30"], ["13:30", "18:00"]] for day in ("mon", "tue", "wed")},
}


@pytest.mark.parametrize(
    ("at", "working"),
    [
        ("2026-01-05T08:00:00+00:00", True),  # Monday 09:00 in Paris (winter, UTC+1)
        ("2026-01-05T07:59:59+00:00", False),
        ("2026-01-05T11:30:00+00:00", False),  # lunch, 12:30 is excluded
        ("2026-01-05T12:30:00+00:00", True),
        ("2026-01-05T16:59:00+00:00", True),
        ("2026-01-05T17:00:00+00:00", False),  # 18:00 is excluded
        ("2026-07-06T07:30:00+00:00", True),  # Monday 09:30 in summer (UTC+2)
        ("2026-01-08T10:00:00+00:00", False),  # Thursday: a day off
    ],
)
def test_working_hours_in_the_agents_time_zone(at: str, working: bool) -> None:
    hours = msgspec.convert(PARIS_WEEKDAYS, WorkingHours)
    assert hours.problems() == []
    assert hours.is_working(datetime.fromisoformat(at)) is working


def test_working_hours_problems() -> None:
    bad = msgspec.convert(
        {
            "timezone": "Mars/Olympus",
            "week": {"mon": [["9:00", "17:00"]], "tue": [["18:00", "09:00"]]},
        },
        WorkingHours,
    )
    assert bad.problems() == [
        "timezone: unknown time zone 'Mars/Olympus'",
        "week.mon[0]: times are HH:MM, e.g. 09:00-17:30",
        "week.tue[0]: 18:00 is not before 09:00",
    ]
    whole_day = msgspec.convert({"week": {"sun": [["00:00", "24:00"]]}}, WorkingHours)
    assert whole_day.problems() == []
    assert whole_day.is_working(datetime(2026, 1, 4, 23, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_agents_off_shift_get_nothing(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock, strategy: str
) -> None:
    app = await helpdesk_factory(**settings([strategy], **{strategy: STRATEGIES[strategy]}))
    _, (ann, bob, cid) = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    for agent in (ann, bob, cid):
        await app.directory.set_skills(agent, {"postgres": 3})
    hours = msgspec.convert(PARIS_WEEKDAYS, WorkingHours)
    await app.directory.set_working_hours(ann, hours)  # Monday 10:00 in Paris: on shift
    await app.directory.set_working_hours(
        bob, msgspec.convert({"week": {"tue": [["00:00", "24:00"]]}}, WorkingHours)
    )
    await app.directory.set_availability(cid, "offline")  # no hours, but offline
    assignees = {(await open_ticket(app, f"T{i}", category="db"))[0].assignee_id for i in range(3)}
    assert assignees == {ann}
    clock.advance(hours=8)  # 18:00 in Paris: Ann's day is over, Bob is not working Mondays
    late, _ = await open_ticket(app, "Late", category="db")
    assert late.assignee_id is None
    clock.advance(hours=7)  # Tuesday 00:00 in UTC: Bob's shift
    night, _ = await open_ticket(app, "Night", category="db")
    assert night.assignee_id == bob
    await app.directory.set_working_hours(bob, None)  # no hours: always on shift
    profile = await app.directory.routing_profile(bob)
    assert (profile.working_hours, profile.on_shift) == (None, True)


async def test_working_hours_through_the_api(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory()
    seed = await seed_helpdesk(app)
    url = f"/api/v1/users/{seed.agent.id}/routing"
    async with api_client(app) as api:
        done = await api.patch(
            url, headers=seed.headers("agent"), json={"working_hours": PARIS_WEEKDAYS}
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["working_hours"]["timezone"] == "Europe/Paris"
        assert body["working_hours"]["week"]["mon"] == [["09:00", "12:30"], ["13:30", "18:00"]]
        assert body["on_shift"] is True  # the test clock: Monday 09:00 UTC
        bad = await api.patch(
            url,
            headers=seed.headers("agent"),
            json={"availability": "away", "working_hours": {"timezone": "Nowhere/Land"}},
        )
        assert bad.status_code == 422
        assert bad.json()["field"] == "working_hours"
        again = (await api.get(url, headers=seed.headers("agent"))).json()
        assert again["availability"] == "online"  # the refused patch changed nothing
        cleared = await api.patch(url, headers=seed.headers("agent"), json={"working_hours": None})
        assert cleared.json()["working_hours"] is None

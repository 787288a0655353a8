"""Routing's per-ticket read kept by triggers (migration 0013, ``ticketcore.db.load_triggers``):
``agent_load`` always equals the open tickets per assignee counted from ``ticket``, and
``routing_roster_version.assignments`` the sum of ``team_member.assigned_count``, whatever
writes (the services, raw SQL, foreign-key actions); the migration backfills both on an
older database; and routing's per-ticket statement reads no ticket, yet least loaded still
follows closes and reassignments made behind routing's back. Both engines."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketcore.app import App
from ticketcore.db.load_triggers import POSTGRES_FUNCTIONS, POSTGRES_TRIGGERS, SQLITE_TRIGGERS
from ticketcore.db.migrations import migrate
from ticketcore.db.tables import OPEN_TICKET_SQL
from ticketcore.domain.commands import (
    NewTicket,
    NewUser,
    RequesterInput,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.enums import Role, Status
from ticketcore.domain.lifecycle import TRANSITIONS
from ticketcore.domain.models import Principal
from ticketcore.errors import InvalidTransition
from ticketcore.services import routing
from ticketcore.services.routing_roster import LOAD_SQL_POSTGRES, LOAD_SQL_SQLITE, read_state
from ticketcore.testing import traced_statements

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()
ROUND_ROBIN = {
    "plugins": {"routing": ["round_robin"]},
    "plugin": {"routing": {"round_robin": {"default_team": "ops"}}},
}
LEAST_LOADED = {
    "plugins": {"routing": ["least_loaded"]},
    "plugin": {"routing": {"least_loaded": {"default_team": "ops", "default_capacity": 100_000}}},
}
STATUSES = [s.value for s in Status]


async def counted(app: App) -> dict[int, int]:
    """Open tickets per assignee, counted from the tickets."""
    rows = await app.db.fetch(
        "SELECT assignee, COUNT(*) AS n FROM ticket "
        f"WHERE assignee IS NOT NULL AND {OPEN_TICKET_SQL} GROUP BY assignee"
    )
    return {int(r["assignee"]): int(r["n"]) for r in rows}


async def kept(app: App) -> dict[int, int]:
    """Open tickets per agent as the triggers keep them (rows of 0 left out)."""
    rows = await app.db.fetch('SELECT "user", open_tickets FROM agent_load')
    assert all(int(r["open_tickets"]) >= 0 for r in rows), rows
    return {int(r["user"]): int(r["open_tickets"]) for r in rows if r["open_tickets"]}


async def assignment_sum(app: App) -> int:
    return int(
        await app.db.fetchval("SELECT COALESCE(SUM(assigned_count), 0) AS n FROM team_member")
    )


async def kept_sum(app: App) -> int:
    return int(await app.db.fetchval("SELECT assignments FROM routing_roster_version"))


async def assert_consistent(app: App) -> None:
    expected = await counted(app)
    assert await kept(app) == expected
    assert await kept_sum(app) == await assignment_sum(app)
    # And routing's read says the same.
    sql = LOAD_SQL_SQLITE if app.db.is_sqlite else LOAD_SQL_POSTGRES
    (_, total), counts = read_state(await app.db.fetch(sql))
    assert counts == expected
    assert total == await assignment_sum(app)


async def add_agents(app: App, team_id: int, names: list[str]) -> list[int]:
    ids = []
    for name in names:
        user = await app.auth.create_user(
            NewUser(
                email=f"{name.lower()}@ops.example", name=name, role=Role.AGENT, team_ids=[team_id]
            )
        )
        ids.append(user.id)
    return ids


async def new_ticket(app: App, assignee: int | None, team: int | None, i: int) -> int:
    ticket = await app.tickets.create(
        SYSTEM,
        NewTicket(
            subject=f"T{i}",
            requester=RequesterInput(email="c@x.example"),
            team_id=team,
            assignee_id=assignee,
        ),
    )
    return ticket.id


# --- every write path keeps the table equal to the count ---------------------------------

#: One step: (kind, a, b, c) with small integers picking agents, tickets, statuses.
steps = st.tuples(
    st.sampled_from(
        [
            "create",  # through the service: explicitly assigned, or routed (round robin)
            "reassign",  # app.tickets.update (records the assignment: assigned_count moves)
            "unassign",
            "transition",  # app.tickets.transition: wait, hold, resolve, close, reopen, open
            "raw_status",
            "raw_assignee",
            "raw_both",
            "raw_many",  # one statement over several tickets
            "raw_delete_ticket",
            "raw_count",  # raw UPDATE team_member.assigned_count
            "member",  # add or remove a team membership (through the directory)
            "raw_member",  # the same in raw SQL, a new member with assignments already
            "new_agent",
            "delete_agent",  # foreign keys: ticket.assignee SET NULL, team_member CASCADE
        ]
    ),
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 50),
)


class World:
    """One helpdesk for every example of the property: the invariant holds from any state,
    so examples continue where the previous one left off."""

    def __init__(self, app: App, teams: tuple[int, int], agents: list[int]) -> None:
        self.app = app
        self.teams = teams
        self.agents = agents
        self.made: list[int] = []
        self.serial = iter(range(10**6))


@pytest_asyncio.fixture
async def world(helpdesk_factory: HelpdeskFactory) -> World:
    app = await helpdesk_factory(**ROUND_ROBIN)
    ops = await app.directory.create_team("Ops", "ops")
    other = await app.directory.create_team("Other", "other")
    return World(app, (ops, other), await add_agents(app, ops, ["Ann", "Bob", "Cid"]))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=st.lists(steps, min_size=1, max_size=12))
async def test_agent_load_equals_the_count_after_every_write(
    world: World, program: list[tuple[str, int, int, int]]
) -> None:
    for kind, a, b, c in program:
        await apply(world, kind, a, b, c)
        await assert_consistent(world.app)


async def apply(world: World, kind: str, a: int, b: int, c: int) -> None:
    """Run one step of the program."""
    app, db, agents, made, teams = world.app, world.app.db, world.agents, world.made, world.teams
    serial = world.serial
    agent = agents[a % len(agents)] if agents else None
    ticket = made[b % len(made)] if made else None
    status = STATUSES[c % len(STATUSES)]
    if kind == "create" or ticket is None:
        assignee = agent if a % 3 else None  # None: round robin routes it (or leaves it)
        made.append(await new_ticket(app, assignee, teams[0] if assignee else None, next(serial)))
    elif kind in ("reassign", "unassign"):
        current = await app.tickets.snapshot(ticket)
        patch = TicketPatch(
            version=current.version,
            assignee_id=None if kind == "unassign" else agent,
            team_id=teams[c % 2],
        )
        await app.tickets.update(SYSTEM, ticket, patch)
    elif kind == "transition":
        name = list(TRANSITIONS)[c % len(TRANSITIONS)]
        with contextlib.suppress(InvalidTransition):  # not allowed from its status
            await app.tickets.transition(SYSTEM, ticket, TransitionRequest(transition=name))
    elif kind == "raw_status":
        await db.fetch("UPDATE ticket SET status = {} WHERE id = {}", status, ticket)
    elif kind == "raw_assignee":
        await db.fetch("UPDATE ticket SET assignee = {} WHERE id = {}", agent, ticket)
    elif kind == "raw_both":
        await db.fetch(
            "UPDATE ticket SET assignee = {}, status = {} WHERE id = {}", agent, status, ticket
        )
    elif kind == "raw_many":
        await db.fetch(
            "UPDATE ticket SET status = {}, assignee = CASE WHEN id % 2 = 0 THEN {} "
            "ELSE assignee END WHERE id % 3 = {}",
            status,
            agent,
            b % 3,
        )
    elif kind == "raw_delete_ticket":
        await db.fetch("DELETE FROM ticket WHERE id = {}", ticket)
        made.remove(ticket)
    elif kind == "raw_count":
        await db.fetch('UPDATE team_member SET assigned_count = {} WHERE "user" = {}', c * 7, agent)
    elif kind == "member" and agent is not None:
        team = teams[c % 2]
        member = await db.fetch(
            'SELECT id FROM team_member WHERE team = {} AND "user" = {}', team, agent
        )
        if member and team != teams[0]:  # keep the ops team staffed
            await app.directory.remove_member(team, agent)
        elif not member:
            await app.directory.add_member(team, agent)
    elif kind == "raw_member" and agent is not None:
        team = teams[1]
        where = 'WHERE team = {} AND "user" = {}'
        if await db.fetch(f"SELECT id FROM team_member {where}", team, agent):
            await db.fetch(f"DELETE FROM team_member {where}", team, agent)
        else:
            await db.fetch(
                'INSERT INTO team_member (team, "user", assigned_count) VALUES ({}, {}, {})',
                team,
                agent,
                c,
            )
    elif kind == "new_agent":
        agents.extend(await add_agents(app, teams[0], [f"Agent{next(serial)}"]))
    elif kind == "delete_agent" and agent is not None and len(agents) > 2:
        await db.fetch("DELETE FROM app_user WHERE id = {}", agent)
        agents.remove(agent)


# --- the migration backfills an older database -------------------------------------------


async def downgrade(app: App) -> None:
    """The database as it was before migration 0013."""
    db = app.db
    async with db.transaction():
        if db.is_sqlite:
            for name in SQLITE_TRIGGERS:
                await db.execute_ddl(f"DROP TRIGGER {name}")
        else:
            for name, table in POSTGRES_TRIGGERS:
                await db.execute_ddl(f"DROP TRIGGER {name} ON {table}")
            for function in POSTGRES_FUNCTIONS:
                await db.execute_ddl(f"DROP FUNCTION {function}()")
        await db.execute_ddl("DROP TABLE agent_load")
        await db.execute_ddl("ALTER TABLE routing_roster_version DROP COLUMN assignments")
        await db.fetch("DELETE FROM schema_version WHERE version = 13")


async def test_the_migration_backfills_an_older_database(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**ROUND_ROBIN)
    ops = await app.directory.create_team("Ops", "ops")
    ann, bob, cid = await add_agents(app, ops, ["Ann", "Bob", "Cid"])
    ids = [await new_ticket(app, None, None, i) for i in range(9)]  # routed: counts move
    await downgrade(app)
    # Changes the triggers would have tracked, made while they do not exist.
    await app.db.fetch("UPDATE ticket SET status = 'closed' WHERE id = {}", ids[0])
    await app.db.fetch("UPDATE ticket SET assignee = {} WHERE id = {}", ann, ids[1])
    await app.db.fetch("UPDATE ticket SET assignee = NULL WHERE id = {}", ids[2])
    await app.db.fetch("UPDATE ticket SET status = 'pending_customer' WHERE id = {}", ids[3])
    await app.db.fetch('UPDATE team_member SET assigned_count = 40 WHERE "user" = {}', bob)
    expected = await counted(app)
    # (Round robin gave 3 each: ann, bob, cid, ann, ...; the triggers would have moved them.)
    assert expected == {ann: 3, bob: 2, cid: 2}
    assert await assignment_sum(app) == 40 + 3 + 3

    assert await migrate(app.db) == [
        "0013 open tickets per agent and assignment sum kept by triggers"
    ]
    assert await kept(app) == expected
    assert await kept_sum(app) == await assignment_sum(app) == 46
    # The triggers are back: the next changes are tracked.
    await app.db.fetch("UPDATE ticket SET status = 'resolved' WHERE id = {}", ids[4])
    await new_ticket(app, cid, ops, 99)
    await assert_consistent(app)


# --- routing reads no ticket -------------------------------------------------------------


def test_the_load_statement_reads_no_ticket_and_no_team_member() -> None:
    for sql in (LOAD_SQL_SQLITE, LOAD_SQL_POSTGRES):
        assert not re.search(r"\bticket\b", sql), sql
        assert "team_member" not in sql and "GROUP BY" not in sql.upper()
        assert "agent_load" in sql and "routing_roster_version" in sql


async def bulk_open_tickets(app: App, template: int, counts: dict[int, int]) -> None:
    """``counts[agent]`` open tickets each, copied from ticket ``template`` in one statement
    per agent (raw SQL: the triggers count them)."""
    columns = (
        "subject, description, priority, channel, requester, team, custom_fields, tags, "
        "version, created_at, updated_at, sla_pauses, sla_timers, sla_fired"
    )
    for agent, n in counts.items():
        await app.db.fetch(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) "
            f"INSERT INTO ticket (key, status, assignee, {columns}) "
            f"SELECT 'bulk-{agent}-' || s.n, 'open', {agent}, {columns} "
            f"FROM s CROSS JOIN ticket t WHERE t.id = {template}"
        )


async def test_least_loaded_follows_changes_behind_its_back_without_reading_tickets(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**LEAST_LOADED)
    ops = await app.directory.create_team("Ops", "ops")
    ann, bob, cid = await add_agents(app, ops, ["Ann", "Bob", "Cid"])
    template = await new_ticket(app, None, None, 0)  # routed to someone: one open ticket
    await app.db.fetch("UPDATE ticket SET status = 'closed' WHERE id = {}", template)
    await bulk_open_tickets(app, template, {ann: 1500, bob: 1501, cid: 1502})
    assert await kept(app) == await counted(app) == {ann: 1500, bob: 1501, cid: 1502}

    statements: list[str] = []

    async def route() -> int | None:
        """Create a ticket, tracing the statements (only this ticket's)."""
        with traced_statements(app.db, statements):
            ticket = await app.tickets.create(
                SYSTEM, NewTicket(subject="new", requester=RequesterInput(email="c@x.example"))
            )
        return ticket.assignee_id

    assert await route() == ann  # 1500 -> 1501
    # Behind routing's back: Cid's tickets closed, Bob's reassigned to Ann.
    await app.db.fetch(
        "UPDATE ticket SET status = 'closed' WHERE id IN "
        "(SELECT id FROM ticket WHERE assignee = {} AND status = 'open' LIMIT 10)",
        cid,
    )  # Cid 1492
    assert await route() == cid  # 1493
    await app.db.fetch(
        "UPDATE ticket SET assignee = {} WHERE id IN "
        "(SELECT id FROM ticket WHERE assignee = {} AND status = 'open' LIMIT 20)",
        ann,
        bob,
    )  # Ann 1521, Bob 1481
    assert await route() == bob
    # Resolved: no longer counted.
    await app.db.fetch(
        "UPDATE ticket SET status = 'resolved' WHERE id IN "
        "(SELECT id FROM ticket WHERE assignee = {} AND status = 'open' LIMIT 100)",
        ann,
    )  # Ann 1421
    assert await route() == ann
    # Routing's read (one per ticket here: one ticket per batch) reads no ticket row.
    loads = [s for s in statements if "agent_load" in s]
    assert len(loads) == 4 and all(not re.search(r"\bticket\b", s) for s in loads)
    assert not any("GROUP BY assignee" in s for s in statements)
    await assert_consistent(app)


async def test_least_loaded_counts_match_the_snapshot(helpdesk_factory: HelpdeskFactory) -> None:
    """The snapshot's open_tickets equal the counts from the tickets after routing."""
    app = await helpdesk_factory(**LEAST_LOADED)
    ops = await app.directory.create_team("Ops", "ops")
    people = await add_agents(app, ops, ["Ann", "Bob", "Cid", "Dee"])
    for i in range(12):
        await new_ticket(app, None, None, i)
    await app.db.fetch("UPDATE ticket SET status = 'on_hold' WHERE id % 2 = 0")
    await app.db.fetch("UPDATE ticket SET status = 'closed' WHERE id % 5 = 0")
    app.routing_roster.clear()
    async with app.db.transaction():
        context = await routing.load_routing_context(app, app.clock.now())
    expected = await counted(app)
    assert {a.id: a.open_tickets for a in context.teams[ops].agents} == {
        p: expected.get(p, 0) for p in people
    }


async def test_a_reassignment_takes_the_routing_lock_before_moving_the_load(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    """PostgreSQL: routing writes ``agent_load`` rows under the routing lock; a manual
    reassignment, which also takes that lock (to record the assignment), must take it
    before its update moves those rows, or the two could deadlock."""
    app = await helpdesk_factory()
    if app.db.is_sqlite:
        pytest.skip("no routing lock on SQLite (one writer)")
    ops = await app.directory.create_team("Ops", "ops")
    ann, bob = await add_agents(app, ops, ["Ann", "Bob"])
    ticket = await app.tickets.create(
        SYSTEM,
        NewTicket(subject="x", requester=RequesterInput(email="c@x.example"), team_id=ops),
    )
    for assignee in (ann, bob, None):
        current = await app.tickets.snapshot(ticket.id)
        patch = TicketPatch(version=current.version, assignee_id=assignee)
        with traced_statements(app.db) as statements:
            await app.tickets.update(SYSTEM, ticket.id, patch)
        lock = statements.index("SELECT pg_advisory_xact_lock({})")
        update = next(i for i, s in enumerate(statements) if s.startswith("UPDATE ticket SET"))
        assert lock < update, statements
    await assert_consistent(app)

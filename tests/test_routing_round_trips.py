"""Routing a new ticket in few round trips, without changing a decision: the database gets
exactly the stamps the cached snapshot holds (so the next batch's snapshot is still the
database's state), a snapshot kept current between batches equals one read afresh, new
stamps still come after those of members left out of the snapshot, and the creating
transaction spends only the routing lock (PostgreSQL), one read and one update on routing.
Both engines; the last test is the least-loaded choice against its Fraction definition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketcore import AgentSnapshot, RoutingContext, TeamSnapshot, Ticket
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewTicket, NewUser, RequesterInput
from ticketcore.domain.enums import Priority, Role, Status
from ticketcore.domain.models import Contact, Principal, WorkingHours
from ticketcore.plugins.routing import least_loaded
from ticketcore.services import routing
from ticketcore.testing import traced_statements

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()
CONFIG = {
    "plugins": {"routing": ["rules", "round_robin"]},
    "plugin": {
        "routing": {
            "rules": {"rules": [{"name": "db", "team": "db", "categories": ["db"]}]},
            "round_robin": {"default_team": "ops"},
        }
    },
}


async def add_team(app: App, name: str, slug: str, people: list[str]) -> tuple[int, list[int]]:
    team_id = await app.directory.create_team(name, slug)
    ids = []
    for person in people:
        user = await app.auth.create_user(
            NewUser(
                email=f"{person.lower()}@{slug}.example",
                name=person,
                role=Role.AGENT,
                team_ids=[team_id],
            )
        )
        ids.append(user.id)
    return team_id, ids


async def create(app: App, n: int, category: str | None = None) -> list[Ticket]:
    """``n`` tickets at once: they share write batches (one snapshot routes several)."""
    return await asyncio.gather(
        *[
            app.tickets.create(
                SYSTEM,
                NewTicket(
                    subject=f"T{i}",
                    requester=RequesterInput(email="c@x.example"),
                    category=category,
                ),
            )
            for i in range(n)
        ]
    )


async def stamps_in_db(app: App) -> dict[tuple[int, int], datetime | None]:
    rows = await app.db.fetch('SELECT team, "user", last_assigned_at FROM team_member')
    return {(r["team"], r["user"]): r["last_assigned_at"] for r in rows}


def stamps_in(context: RoutingContext) -> dict[tuple[int, int], datetime | None]:
    return {
        (team.id, agent.id): agent.last_assigned_at
        for team in context.teams.values()
        for agent in team.agents
    }


async def fresh_context(app: App) -> RoutingContext:
    """The snapshot as a process with no cache would read it now."""
    app.routing_roster.clear()
    async with app.db.transaction():
        return await routing.load_routing_context(app, app.clock.now())


async def cached_context(app: App) -> RoutingContext:
    """The snapshot the cache serves now (it must still be valid)."""
    key = app.routing_roster.key
    async with app.db.transaction():
        context = await routing.load_routing_context(app, app.clock.now())
    assert app.routing_roster.key == key, "the cache was reloaded"
    return context


async def test_the_database_gets_the_stamps_the_snapshot_holds(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**CONFIG)
    ops, ops_people = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    db, _ = await add_team(app, "DB", "db", ["Dee"])
    await app.directory.add_member(db, ops_people[0])  # Ann is in both teams
    made: list[Ticket] = []
    for _ in range(3):  # a frozen clock: a burst of equal times, stamped apart
        made += await create(app, 4)
        made += await create(app, 3, category="db")
        made += [*await create(app, 1)]
    assert all(t.assignee_id is not None for t in made)
    cached = app.routing_roster.context
    assert cached is not None
    in_db = await stamps_in_db(app)
    assert stamps_in(cached) == in_db
    for team in (ops, db):  # a strict order within each team
        team_stamps = [s for (t, _), s in in_db.items() if t == team]
        assert len(set(team_stamps)) == len(team_stamps)
    total = await app.db.fetchval("SELECT SUM(assigned_count) AS n FROM team_member")
    assert int(total) == len(made)
    # And the next batch's snapshot, kept in step from the cache, is the database's.
    assert await cached_context(app) == await fresh_context(app)
    clock.advance(seconds=1)
    await create(app, 2)
    assert stamps_in(await cached_context(app)) == await stamps_in_db(app)


async def test_a_snapshot_kept_current_equals_one_read_afresh(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**CONFIG)
    ops, (ann, bob, cid) = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    db, (dee,) = await add_team(app, "DB", "db", ["Dee"])
    await app.directory.add_member(db, bob)
    # Bob works Monday mornings (UTC); the test clock starts Monday 09:00 UTC.
    await app.directory.set_working_hours(
        bob, msgspec.convert({"week": {"mon": [["08:00", "10:00"]]}}, WorkingHours)
    )
    made = await create(app, 6) + await create(app, 3, category="db")
    assert {t.assignee_id for t in made} == {ann, bob, cid, dee}
    assert await cached_context(app) == await fresh_context(app)
    # Tickets closed and reassigned behind routing's back: only the counts move.
    first = made[0]
    await app.db.fetch("UPDATE ticket SET status = 'closed' WHERE id = {}", first.id)
    await app.db.fetch("UPDATE ticket SET assignee = {} WHERE id = {}", dee, made[1].id)
    await app.db.fetch("UPDATE ticket SET assignee = NULL WHERE assignee = {}", cid)
    assert await cached_context(app) == await fresh_context(app)
    # An hour later Bob's shift is over: his flag changes in both of his teams.
    clock.advance(minutes=61)
    context = await cached_context(app)
    assert not any(a.on_shift for t in context.teams.values() for a in t.agents if a.id == bob)
    assert context == await fresh_context(app)
    more = await create(app, 4)
    assert bob not in {t.assignee_id for t in more}
    assert await cached_context(app) == await fresh_context(app)
    assert stamps_in(await cached_context(app)) == await stamps_in_db(app)
    assert ops in app.routing_roster.teams_of[ann]


async def test_stamps_come_after_members_left_out_of_the_snapshot(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**CONFIG)
    _, (ann, bob, cid) = await add_team(app, "Ops", "ops", ["Ann", "Bob", "Cid"])
    assert [t.assignee_id for t in await create(app, 3)] == [ann, bob, cid]
    before = await stamps_in_db(app)
    cid_stamp = max(s for s in before.values() if s is not None)
    await app.auth.set_active(cid, False)  # out of the snapshot, his stamp stays
    [ticket] = await create(app, 1)
    assert ticket.assignee_id == ann
    after = await stamps_in_db(app)
    # As record_assignment would: after every stamp of the team (a frozen clock).
    [ann_stamp] = [s for (_, user), s in after.items() if user == ann]
    assert ann_stamp == cid_stamp + timedelta(microseconds=1)
    assert stamps_in(await cached_context(app)) == {k: v for k, v in after.items() if k[1] != cid}
    await app.auth.set_active(cid, True)  # back: Bob, then Cid, then Ann
    assert [t.assignee_id for t in await create(app, 3)] == [bob, cid, ann]


async def test_routing_costs_one_read_and_one_update_per_batch(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**CONFIG)
    _, people = await add_team(app, "Ops", "ops", ["Ann", "Bob"])
    await create(app, 1)  # loads the snapshot
    with traced_statements(app.db) as statements:
        [ticket] = await create(app, 1)
    assert ticket.assignee_id in people
    routing_statements = [
        s
        for s in statements
        if "team_member" in s or "routing_roster_version" in s or "pg_advisory" in s
    ]
    lock = [] if app.db.is_sqlite else ["SELECT pg_advisory_xact_lock({})"]
    assert routing_statements[: len(lock)] == lock
    rest = routing_statements[len(lock) :]
    assert len(rest) == 2, routing_statements
    assert "routing_roster_version" in rest[0] and "agent_load" in rest[0]
    assert rest[1].startswith("UPDATE team_member")
    assert not any(s.startswith("SELECT last_assigned_at") for s in statements)


# --- least loaded: exact ratios without a Fraction per agent -----------------------------

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


@st.composite
def loaded_agents(draw: Any) -> list[AgentSnapshot]:
    n = draw(st.integers(min_value=1, max_value=12))
    return [
        AgentSnapshot(
            id=i + 1,
            name=f"Agent {i + 1}",
            availability=draw(st.sampled_from(["online", "online", "away"])),
            capacity=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=40))),
            last_assigned_at=draw(
                st.one_of(
                    st.none(),
                    st.integers(0, 5).map(lambda s: NOW - timedelta(seconds=s)),
                )
            ),
            open_tickets=draw(st.integers(min_value=0, max_value=40)),
        )
        for i in range(n)
    ]


@settings(max_examples=300, deadline=None)
@given(team=loaded_agents(), default=st.integers(min_value=1, max_value=30))
def test_least_loaded_picks_the_lowest_ratio_as_fractions_do(
    team: list[AgentSnapshot], default: int
) -> None:
    plugin = least_loaded.create(least_loaded.Config(default_capacity=default))
    context = RoutingContext(
        now=NOW,
        teams={1: TeamSnapshot(id=1, name="Ops", slug="ops", agents=team)},
        team_slugs={"ops": 1},
    )
    ticket = Ticket(
        id=0, key="k", subject="Help", status=Status.NEW, priority=Priority.NORMAL,
        category=None, channel="api", requester=Contact(id=1, name="C", email="c@x.example"),
        team_id=1, assignee_id=None, tags=[], custom_fields={}, version=1, created_at=NOW,
        updated_at=NOW,
    )  # fmt: skip
    decision = plugin.route_ticket(ticket=ticket, context=context)
    never = datetime.min.replace(tzinfo=UTC)
    room = [a for a in team if a.routable and a.open_tickets < plugin.capacity(a)]
    if not room:
        assert decision is None
        return
    expected = min(
        room,
        key=lambda a: (
            Fraction(a.open_tickets, plugin.capacity(a)),
            a.last_assigned_at or never,
            a.id,
        ),
    )
    assert decision is not None and decision.assignee_id == expected.id

"""Property tests (hypothesis) of the routing strategies as pure functions of a snapshot,
with batches routed the way the host routes them (one snapshot, ``note_assignment`` after
each decision):

- round robin spreads N tickets over k online agents with counts differing by at most one,
  whatever the earlier rotation state;
- no strategy ever assigns an away or offline agent (or one switched off, or off shift);
- skills never assigns an agent below a required level, and assigns when someone qualifies;
- least loaded never takes an agent to more open tickets than its capacity, and leaves a
  ticket unassigned only when every online agent is full.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketcore import AgentSnapshot, RouteDecision, RoutingContext, TeamSnapshot, Ticket
from ticketcore.domain.enums import Priority, Status
from ticketcore.domain.models import Contact
from ticketcore.plugins.routing import least_loaded, round_robin, skills
from ticketcore.services.routing import note_assignment

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)
TEAM = 1
SKILLS = ("postgres", "linux", "network")

stamps = st.one_of(
    st.none(), st.integers(min_value=0, max_value=10_000).map(lambda s: NOW - timedelta(seconds=s))
)
availability = st.sampled_from(["online", "away", "offline"])


@st.composite
def agents(draw: Any, min_size: int = 1, max_size: int = 8) -> list[AgentSnapshot]:
    """Agents with random presence, skills, load, capacity and rotation state."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    return [
        AgentSnapshot(
            id=i + 1,
            name=f"Agent {i + 1}",
            available=draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else True,
            availability=draw(availability),
            capacity=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=6))),
            last_assigned_at=draw(stamps),
            skills=draw(
                st.dictionaries(st.sampled_from(SKILLS), st.integers(min_value=1, max_value=5))
            ),
            open_tickets=draw(st.integers(min_value=0, max_value=8)),
            on_shift=draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else True,
        )
        for i in range(n)
    ]


def context_of(team_agents: list[AgentSnapshot]) -> RoutingContext:
    team = TeamSnapshot(id=TEAM, name="Ops", slug="ops", agents=team_agents)
    return RoutingContext(now=NOW, teams={TEAM: team}, team_slugs={"ops": TEAM})


def new_ticket(custom_fields: dict[str, Any] | None = None, category: str | None = None) -> Ticket:
    return Ticket(
        id=0,
        key="k",
        subject="Help",
        status=Status.NEW,
        priority=Priority.NORMAL,
        category=category,
        channel="api",
        requester=Contact(id=1, name="C", email="c@x.example"),
        team_id=TEAM,
        assignee_id=None,
        tags=[],
        custom_fields=custom_fields or {},
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )


def route_batch(
    plugin: Any, context: RoutingContext, tickets: list[Ticket]
) -> tuple[list[RouteDecision | None], RoutingContext]:
    """Route tickets one after the other from one snapshot, as the batch writer does."""
    decisions: list[RouteDecision | None] = []
    for ticket in tickets:
        decision = plugin.route_ticket(ticket=ticket, context=context)
        decisions.append(decision)
        if decision is not None and decision.assignee_id is not None:
            context = note_assignment(context, TEAM, decision.assignee_id, NOW)
    return decisions, context


def by_id(context: RoutingContext) -> dict[int, AgentSnapshot]:
    return {a.id: a for a in context.teams[TEAM].agents}


@settings(max_examples=100, deadline=None)
@given(team=agents(), n=st.integers(min_value=0, max_value=40))
def test_round_robin_counts_differ_by_at_most_one(team: list[AgentSnapshot], n: int) -> None:
    plugin = round_robin.create(round_robin.Config())
    decisions, _ = route_batch(plugin, context_of(team), [new_ticket()] * n)
    online = [a.id for a in team if a.routable]
    if not online:
        assert decisions == [None] * n
        return
    counts = Counter(d.assignee_id for d in decisions if d is not None)
    assert sum(counts.values()) == n
    assert set(counts) <= set(online)
    per_agent = [counts.get(agent, 0) for agent in online]
    assert max(per_agent) - min(per_agent) <= 1


def _strategies() -> list[Any]:
    return [
        round_robin.create(round_robin.Config()),
        skills.create(skills.Config(categories={"db": {"postgres": 1}})),
        least_loaded.create(least_loaded.Config(default_capacity=5)),
    ]


@settings(max_examples=100, deadline=None)
@given(team=agents(), n=st.integers(min_value=1, max_value=15))
def test_no_strategy_assigns_an_agent_who_is_not_online(team: list[AgentSnapshot], n: int) -> None:
    not_routable = {a.id for a in team if not a.routable}
    for plugin in _strategies():
        decisions, _ = route_batch(plugin, context_of(team), [new_ticket(category="db")] * n)
        assigned = {d.assignee_id for d in decisions if d is not None and d.assignee_id}
        assert not assigned & not_routable, type(plugin).__name__


@settings(max_examples=120, deadline=None)
@given(
    team=agents(),
    category_needs=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2),
    ticket_needs=st.dictionaries(st.sampled_from(SKILLS), st.integers(-2, 8), max_size=2),
    n=st.integers(min_value=1, max_value=10),
)
def test_skills_never_assigns_below_the_required_level(
    team: list[AgentSnapshot],
    category_needs: dict[str, int],
    ticket_needs: dict[str, int],
    n: int,
) -> None:
    plugin = skills.create(skills.Config(categories={"cat": category_needs}))
    ticket = new_ticket({"required_skills": ticket_needs}, category="cat")
    required = plugin.required(ticket)
    for skill, level in category_needs.items():
        assert required[skill] >= level
    for skill, level in ticket_needs.items():
        assert required[skill] >= max(1, min(5, level))
    decisions, _ = route_batch(plugin, context_of(team), [ticket] * n)
    agents_by_id = {a.id: a for a in team}
    qualified = [a for a in team if a.routable and skills.qualifies(a, required)]
    for decision in decisions:
        if not required:
            assert decision is None
            continue
        assert decision is not None
        if decision.assignee_id is None:
            assert not qualified and decision.final
            continue
        agent = agents_by_id[decision.assignee_id]
        assert agent.routable
        for skill, level in required.items():
            assert agent.skills.get(skill, 0) >= level


@settings(max_examples=120, deadline=None)
@given(
    team=agents(),
    default_capacity=st.integers(min_value=0, max_value=6),
    n=st.integers(min_value=1, max_value=30),
)
def test_least_loaded_never_exceeds_capacity(
    team: list[AgentSnapshot], default_capacity: int, n: int
) -> None:
    plugin = least_loaded.create(least_loaded.Config(default_capacity=default_capacity))
    context = context_of(team)
    for _ in range(n):
        before = by_id(context)
        decision = plugin.route_ticket(ticket=new_ticket(), context=context)
        room = [a for a in before.values() if a.routable and a.open_tickets < plugin.capacity(a)]
        if decision is None:
            assert not room  # unassigned only when every online agent is full
            continue
        assert decision.assignee_id is not None
        agent = before[decision.assignee_id]
        assert agent.routable
        assert agent.open_tickets < plugin.capacity(agent)
        ratio = agent.open_tickets / plugin.capacity(agent)
        assert all(ratio <= a.open_tickets / plugin.capacity(a) for a in room)
        context = note_assignment(context, TEAM, agent.id, NOW)
        assert by_id(context)[agent.id].open_tickets == agent.open_tickets + 1
    for agent in by_id(context).values():
        start = next(a for a in team if a.id == agent.id)
        assert agent.open_tickets <= max(start.open_tickets, plugin.capacity(agent))


def test_note_assignment_bumps_the_load_in_every_team_of_the_agent() -> None:
    ann = AgentSnapshot(id=1, name="Ann", open_tickets=2, last_assigned_at=None)
    bob = AgentSnapshot(id=2, name="Bob")
    context = RoutingContext(
        now=NOW,
        teams={
            1: TeamSnapshot(id=1, name="A", slug="a", agents=[ann, bob]),
            2: TeamSnapshot(id=2, name="B", slug="b", agents=[ann]),
        },
        team_slugs={"a": 1, "b": 2},
    )
    after = note_assignment(context, 1, 1, NOW)
    [a1, b1] = after.teams[1].agents
    [a2] = after.teams[2].agents
    assert (a1.open_tickets, a2.open_tickets, b1.open_tickets) == (3, 3, 0)
    assert a1.last_assigned_at == NOW
    assert a2.last_assigned_at is None  # the rotation is per team

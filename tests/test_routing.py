"""Routing of new tickets by the built-in ``rules`` and ``round_robin`` plugins, on both
engines: rule matching, fair rotation that survives a restart, availability, the chain in
config order with every decision and its reason in the history, and refused decisions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ticketcore import RouteDecision, RoutingContext, Ticket, hookimpl
from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, NewUser, RequesterInput
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal, TicketEvent
from ticketcore.testing import Seed, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()

RULES: list[dict[str, Any]] = [
    {
        "name": "payments",
        "team": "billing",
        "keywords": ["invoice", "payment failed", "facture"],
        "categories": ["billing"],
    },
    {"name": "phones", "team": "billing", "channels": ["phone"]},
    {"name": "ghost", "team": "no-such-team", "keywords": ["ghost"]},
]


def routing_settings(
    order: tuple[str, ...] = ("rules", "round_robin"), rules: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Settings overrides enabling the routing plugins in ``order``."""
    return {
        "plugins": {"routing": list(order)},
        "plugin": {
            "routing": {
                "rules": {"rules": RULES if rules is None else rules},
                "round_robin": {"default_team": "support"},
            }
        },
    }


async def billing_team(app: App) -> tuple[int, list[int]]:
    """A ``billing`` team with two agents of its own; return its id and the agent ids."""
    team_id = await app.directory.create_team("Billing", "billing")
    agents = []
    for email, name in (("bea@example.org", "Bea Billing"), ("ben@example.org", "Ben Billing")):
        user = await app.auth.create_user(
            NewUser(email=email, name=name, role=Role.AGENT, team_ids=[team_id])
        )
        agents.append(user.id)
    return team_id, agents


async def open_ticket(
    app: App, subject: str, body: str = "", **fields: Any
) -> tuple[Ticket, list[TicketEvent]]:
    """Create a ticket as the system and return it with its history."""
    ticket = await app.tickets.create(
        SYSTEM,
        NewTicket(
            subject=subject,
            body=body,
            requester=RequesterInput(email="client@example.org"),
            **fields,
        ),
    )
    return ticket, await app.tickets.events(SYSTEM, ticket.id)


def routing_events(history: list[TicketEvent]) -> list[TicketEvent]:
    """The routing decisions (applied or refused) in a history."""
    return [e for e in history if e.kind in ("routed", "routing_rejected")]


async def test_keyword_rule_then_round_robin_in_the_team(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**routing_settings())
    await seed_helpdesk(app)
    billing, billing_agents = await billing_team(app)

    ticket, history = await open_ticket(app, "Wrong INVOICE amount", "Please fix")
    assert ticket.team_id == billing
    assert ticket.assignee_id in billing_agents
    stored = await app.tickets.snapshot(ticket.id)
    assert (stored.team_id, stored.assignee_id) == (ticket.team_id, ticket.assignee_id)

    assert [e.kind for e in history] == ["created", "routed", "routed"]
    by_rules, by_rr = routing_events(history)
    assert by_rules.data["plugin"] == "routing.rules"
    assert "payments" in by_rules.data["reason"] and "invoice" in by_rules.data["reason"]
    assert by_rules.changes["team_id"].old is None
    assert by_rules.changes["team_id"].new == billing
    assert "assignee_id" not in by_rules.changes
    assert by_rr.data["plugin"] == "routing.round_robin"
    assert "Billing" in by_rr.data["reason"]
    assert by_rr.changes["assignee_id"].new == ticket.assignee_id
    assert by_rules.actor.kind == by_rr.actor.kind == "system"


async def test_rule_matching_is_case_insensitive_and_whole_word(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**routing_settings())
    seed = await seed_helpdesk(app)
    billing, _ = await billing_team(app)
    cases = [
        ("invoice missing", "", billing),
        ("Question", "my Invoice: where is it?", billing),  # in the body, any case
        ("Payment   failed", "", seed.team_id),  # the phrase must match as written
        ("PAYMENT FAILED again", "", billing),
        ("Invoices for May", "", seed.team_id),  # not a whole word
        ("reinvoice please", "", seed.team_id),
        ("invoice_42 missing", "", seed.team_id),
        ("Votre Facture", "", billing),
        ("Factures de mai", "", seed.team_id),
    ]
    for subject, body, team in cases:
        ticket, history = await open_ticket(app, subject, body)
        assert ticket.team_id == team, subject
        plugins = [e.data["plugin"] for e in routing_events(history)]
        expected = ["routing.rules", "routing.round_robin"] if team == billing else None
        assert plugins == (expected or ["routing.round_robin"]), subject


async def test_category_and_channel_rules(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(**routing_settings())
    await seed_helpdesk(app)
    billing, _ = await billing_team(app)
    by_category, history = await open_ticket(app, "Question", category="billing")
    assert by_category.team_id == billing
    assert "category 'billing'" in routing_events(history)[0].data["reason"]
    by_channel, history = await open_ticket(app, "Call me", channel="phone")
    assert by_channel.team_id == billing
    reason = routing_events(history)[0].data["reason"]
    assert "phones" in reason and "channel 'phone'" in reason


async def test_rule_naming_an_unknown_team_makes_no_decision(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**routing_settings())
    seed = await seed_helpdesk(app)
    await billing_team(app)
    ticket, history = await open_ticket(app, "A ghost in the machine")
    assert ticket.team_id == seed.team_id  # round robin's default team
    decisions = routing_events(history)
    assert [e.data["plugin"] for e in decisions] == ["routing.round_robin"]
    assert all(e.kind == "routed" for e in decisions)


async def test_a_ticket_with_a_team_skips_rules_and_one_with_an_agent_skips_routing(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**routing_settings())
    seed = await seed_helpdesk(app)
    billing, _ = await billing_team(app)
    in_support, history = await open_ticket(app, "invoice", team_id=seed.team_id)
    assert in_support.team_id == seed.team_id
    assert in_support.assignee_id in (seed.agent.id, seed.agent2.id)
    assert [e.data["plugin"] for e in routing_events(history)] == ["routing.round_robin"]
    chosen, history = await open_ticket(
        app, "invoice", team_id=seed.team_id, assignee_id=seed.agent2.id
    )
    assert (chosen.team_id, chosen.assignee_id) == (seed.team_id, seed.agent2.id)
    assert routing_events(history) == []
    assert billing != seed.team_id


def assert_fair(assignees: list[int | None], agents: list[int]) -> None:
    """Every prefix of the assignment sequence is balanced within one ticket."""
    for n in range(1, len(assignees) + 1):
        counts = Counter(assignees[:n])
        per_agent = [counts.get(agent, 0) for agent in agents]
        assert max(per_agent) - min(per_agent) <= 1, (n, assignees)
        assert sum(per_agent) == n


async def test_round_robin_is_fair(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(**routing_settings(("round_robin",)))
    seed = await seed_helpdesk(app)
    third = await app.auth.create_user(
        NewUser(email="tia@example.org", name="Tia Third", role=Role.AGENT, team_ids=[seed.team_id])
    )
    agents = [seed.agent.id, seed.agent2.id, third.id]
    # The test clock does not move: ties in "last assigned at" must not break the rotation.
    assignees = [(await open_ticket(app, f"Ticket {i}"))[0].assignee_id for i in range(10)]
    assert_fair(assignees, agents)
    assert sorted(Counter(assignees).values()) == [3, 3, 4]


async def test_round_robin_state_survives_a_restart(
    helpdesk_factory: HelpdeskFactory, db_url: str
) -> None:
    first = await helpdesk_factory(**routing_settings(("round_robin",)))
    seed = await seed_helpdesk(first)
    agents = [seed.agent.id, seed.agent2.id]
    before = [(await open_ticket(first, f"Before {i}"))[0].assignee_id for i in range(3)]
    await first.stop()

    second = await helpdesk_factory(**routing_settings(("round_robin",)))
    assert second.settings.database.url == db_url
    after = [(await open_ticket(second, f"After {i}"))[0].assignee_id for i in range(3)]
    # The rotation continues where it stopped instead of starting over.
    assert after[0] != before[-1]
    assert_fair(before + after, agents)
    assert Counter(before + after) == {seed.agent.id: 3, seed.agent2.id: 3}


async def test_unavailable_agent_gets_nothing(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(**routing_settings(("round_robin",)))
    seed = await seed_helpdesk(app)
    async with app.db.transaction():
        await app.db.fetch(
            "UPDATE app_user SET available = {} WHERE id = {}", False, seed.agent2.id
        )
    assignees = {(await open_ticket(app, f"T{i}"))[0].assignee_id for i in range(4)}
    assert assignees == {seed.agent.id}
    async with app.db.transaction():
        await app.db.fetch("UPDATE app_user SET available = {} WHERE id = {}", False, seed.agent.id)
    nobody, history = await open_ticket(app, "Nobody home")
    assert (nobody.team_id, nobody.assignee_id) == (None, None)
    assert routing_events(history) == []


async def test_chain_follows_config_order(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(**routing_settings(("round_robin", "rules")))
    seed = await seed_helpdesk(app)
    await billing_team(app)
    ticket, history = await open_ticket(app, "invoice")
    # round_robin comes first, picks an agent in the default team, and ends the chain.
    assert ticket.team_id == seed.team_id
    assert [e.data["plugin"] for e in routing_events(history)] == ["routing.round_robin"]
    assert [p.name for p in app.plugins] == ["round_robin", "rules"]


async def test_routing_through_the_api_is_in_the_history(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**routing_settings())
    seed: Seed = await seed_helpdesk(app)
    billing, agents = await billing_team(app)
    async with api_client(app) as api:
        created = await api.post(
            "/api/v1/tickets",
            headers=seed.headers("customer"),
            json={"subject": "Payment failed on my card"},
        )
        assert created.status_code == 201, created.text
        ticket = created.json()
        assert ticket["team_id"] == billing and ticket["assignee_id"] in agents
        events = (
            await api.get(f"/api/v1/tickets/{ticket['id']}/events", headers=seed.headers("agent"))
        ).json()
        routed = [e for e in events if e["kind"] == "routed"]
        assert [e["data"]["plugin"] for e in routed] == ["routing.rules", "routing.round_robin"]
        assert all(e["data"]["reason"] for e in routed)
        assert routed[0]["changes"]["team_id"] == [None, billing]


class Misrouter:
    """A routing plugin whose decisions are invalid: an agent outside the team, or a team
    that does not exist."""

    def __init__(self, assignee_id: int | None, team_id: int | None) -> None:
        self.assignee_id = assignee_id
        self.team_id = team_id

    @hookimpl
    def route_ticket(self, ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
        """Always answer with the configured decision."""
        return RouteDecision(
            team_id=self.team_id, assignee_id=self.assignee_id, reason="misconfigured"
        )


async def test_decision_naming_a_non_member_is_rejected_and_recorded(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    bad = Misrouter(assignee_id=None, team_id=None)
    app = await helpdesk_factory(extra_plugins=[("misrouter", bad)], **routing_settings(("rules",)))
    seed = await seed_helpdesk(app)
    billing, _ = await billing_team(app)
    bad.team_id, bad.assignee_id = seed.team_id, seed.customer.id  # a customer, no member

    ticket, history = await open_ticket(app, "Invoice question")
    # The rules decision stands; the misrouter's is refused, recorded, and not applied.
    assert (ticket.team_id, ticket.assignee_id) == (billing, None)
    stored = await app.tickets.snapshot(ticket.id)
    assert (stored.team_id, stored.assignee_id) == (billing, None)
    decisions = routing_events(history)
    assert [(e.kind, e.data["plugin"]) for e in decisions] == [
        ("routed", "routing.rules"),
        ("routing_rejected", "misrouter"),
    ]
    rejected = decisions[1]
    assert rejected.data["reason"] == "misconfigured"
    assert str(seed.customer.id) in rejected.data["problem"]
    assert rejected.changes == {}

    # An agent of another team is refused the same way.
    bad.team_id, bad.assignee_id = billing, seed.agent.id
    other, history = await open_ticket(app, "Anything")
    assert (other.team_id, other.assignee_id) == (None, None)
    assert [e.kind for e in routing_events(history)] == ["routing_rejected"]

    # So is a team that does not exist.
    bad.team_id, bad.assignee_id = 424242, None
    lost, history = await open_ticket(app, "Anything else")
    assert lost.team_id is None
    assert "424242" in routing_events(history)[0].data["problem"]
    rows = await app.db.fetch(
        "SELECT COUNT(*) AS n FROM team_member WHERE last_assigned_at IS NOT NULL"
    )
    assert rows[0]["n"] == 0

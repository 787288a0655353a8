"""The ``triage_rules`` plugin: keywords in any language (whole words, any case, accents),
regular expressions, sender domain, channel and custom fields; category, priority and tags
with the rule named in the reason; configuration errors at start-up; and classification of
tickets created through the service and the API, on both engines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ticketcore import Contact, Priority, Status, Ticket
from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput, TicketFilters
from ticketcore.domain.models import Principal
from ticketcore.errors import ConfigError
from ticketcore.plugins.triage.rules import Config, TriageRules, create
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()

#: The seed's examples, as an administrator would write them in the settings.
SEED_RULES: list[dict[str, Any]] = [
    {
        "name": "passwords",
        "keywords": ["mot de passe", "password reset"],
        "category": "account/password",
        "tags": ["password"],
    },
    {
        "name": "payments",
        "keywords": ["payment failed", "carte bancaire", "échoue"],
        "category": "billing",
        "priority": "high",
        "tags": ["payments"],
    },
]


def plugin(rules: list[dict[str, Any]], **options: Any) -> TriageRules:
    """The plugin built the way the plugin manager builds it."""
    return create(msgspec.convert({"rules": rules, **options}, Config))


def ticket(
    subject: str,
    body: str = "",
    *,
    email: str = "client@example.org",
    channel: str = "api",
    custom_fields: dict[str, Any] | None = None,
) -> Ticket:
    """A new ticket snapshot as triage sees it."""
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return Ticket(
        id=0,
        key="k",
        subject=subject,
        description=body,
        status=Status.NEW,
        priority=Priority.NORMAL,
        category=None,
        channel=channel,
        requester=Contact(id=1, name="Client", email=email),
        team_id=None,
        assignee_id=None,
        tags=[],
        custom_fields=custom_fields or {},
        version=1,
        created_at=now,
        updated_at=now,
    )


def classify(rules: TriageRules, t: Ticket) -> Any:
    return rules.classify_ticket(ticket=t, context={})


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("Mot de passe oublié", "", "account/password"),
        ("Aide", "J'ai perdu mon MOT DE PASSE hier", "account/password"),
        ("Password Reset please", "", "account/password"),
        ("password\nreset", "", "account/password"),  # a phrase across a line break
        ("passwords reset", "", None),  # whole words only
        ("Payment failed", "", "billing"),
        ("Ma carte bancaire échoue constamment", "", "billing"),
        ("MA CARTE BANCAIRE ÉCHOUE", "", "billing"),  # case-insensitive, accents kept
        ("La commande échouée", "", None),  # "échoue" is not a whole word there
        ("Ma carte bancaire", "", "billing"),
        ("Ma carte e\u0301choue", "", "billing"),  # decomposed é (NFD) still matches
        ("Ma carte echoue", "", None),  # without fold_accents, accents count
        ("Hello", "nothing to see", None),
    ],
)
def test_seed_keywords(subject: str, body: str, category: str | None) -> None:
    answer = classify(plugin(SEED_RULES), ticket(subject, body))
    assert (answer.category if answer else None) == category


def test_reason_names_the_rule_and_what_matched() -> None:
    answer = classify(plugin(SEED_RULES), ticket("Payment failed twice"))
    assert answer.reason == "rule 'payments': keyword 'payment failed'"
    assert (answer.category, answer.priority, answer.tags) == ("billing", "high", ["payments"])
    answer = classify(plugin(SEED_RULES), ticket("mot de passe"))
    assert answer.reason == "rule 'passwords': keyword 'mot de passe'"
    assert answer.priority is None  # the rule sets no priority: left as it is


def test_fold_accents_and_unicode_case_folding() -> None:
    rules = plugin([{"name": "fail", "keywords": ["échoue", "straße"], "category": "x"}])
    assert classify(rules, ticket("STRASSE gesperrt")) is not None  # ß folds to ss
    assert classify(rules, ticket("ça echoue")) is None
    folded = plugin([{"name": "fail", "keywords": ["echoue"], "category": "x"}], fold_accents=True)
    assert classify(folded, ticket("ça ÉCHOUE")) is not None
    assert classify(folded, ticket("ça échouera")) is None  # still whole words


def test_patterns_domains_channels_and_custom_fields() -> None:
    rules = plugin(
        [
            {"name": "orders", "patterns": [r"\border\s*#?\d{5,}\b"], "category": "orders"},
            {"name": "partners", "sender_domains": ["partner.example"], "priority": "high"},
            {"name": "phone", "channels": ["phone"], "tags": ["Callback"]},
            {"name": "enterprise", "custom_fields": {"plan": "enterprise"}, "priority": "high"},
        ]
    )
    answer = classify(rules, ticket("Where is ORDER #123456?"))
    assert answer.category == "orders"
    assert answer.reason.startswith("rule 'orders': pattern ")
    answer = classify(rules, ticket("Hi", email="jo@eu.partner.example"))  # subdomain
    assert answer.priority == "high"
    assert answer.reason == "rule 'partners': sender domain 'partner.example'"
    assert classify(rules, ticket("Hi", email="jo@notpartner.example")) is None
    answer = classify(rules, ticket("Hi", channel="phone"))
    assert answer.tags == ["callback"]
    assert answer.reason == "rule 'phone': channel 'phone'"
    answer = classify(rules, ticket("Hi", custom_fields={"plan": "enterprise"}))
    assert answer.reason == "rule 'enterprise': custom fields plan = 'enterprise'"
    assert classify(rules, ticket("Hi", custom_fields={"plan": "free"})) is None


def test_match_all_needs_every_kind_of_condition() -> None:
    rules = plugin(
        [
            {
                "name": "urgent-mail",
                "match": "all",
                "keywords": ["urgent"],
                "channels": ["email"],
                "priority": "critical",
            }
        ]
    )
    assert classify(rules, ticket("urgent", channel="api")) is None
    assert classify(rules, ticket("hello", channel="email")) is None
    answer = classify(rules, ticket("URGENT: down", channel="email"))
    assert answer.priority == "critical"
    assert answer.reason == "rule 'urgent-mail': keyword 'urgent' and channel 'email'"


def test_first_match_or_every_match() -> None:
    rules = [
        {"name": "a", "keywords": ["refund"], "category": "billing", "tags": ["refund"]},
        {"name": "b", "keywords": ["angry"], "category": "complaints", "priority": "high"},
    ]
    first = classify(plugin(rules), ticket("angry about my refund"))
    assert (first.category, first.priority, first.tags) == ("billing", None, ["refund"])
    every = classify(plugin(rules, first_match=False), ticket("angry about my refund"))
    assert (every.category, every.priority, every.tags) == ("billing", "high", ["refund"])
    assert every.reason == "rule 'a': keyword 'refund'; rule 'b': keyword 'angry'"


def test_invalid_rules_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError) as caught:
        plugin(
            [
                {"name": "bad-regex", "patterns": ["(unclosed"], "category": "x"},
                {"name": "no-condition", "category": "x"},
                {"name": "no-action", "keywords": ["x"]},
                {"name": "no-action", "keywords": ["y"], "category": "y"},
            ]
        )
    message = str(caught.value)
    assert "'bad-regex'" in message and "invalid regular expression" in message
    assert "'no-condition'" in message and "no condition" in message
    assert "no action" in message
    assert "another rule has this name" in message
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"rules": [{"name": "x", "keyword": ["typo"]}]}, Config)


def triage_settings(rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Settings overrides enabling the plugin with ``rules`` (the seed's by default)."""
    return {
        "plugins": {"plugins": ["triage_rules"]},
        "plugin": {"plugins": {"triage_rules": {"rules": SEED_RULES if rules is None else rules}}},
    }


async def test_a_broken_rule_stops_start_up(helpdesk_factory: HelpdeskFactory) -> None:
    with pytest.raises(ConfigError) as caught:
        await helpdesk_factory(**triage_settings([{"name": "oops", "patterns": ["["]}]))
    text = str(caught.value)
    assert "plugins.triage_rules" in text and "'oops'" in text


async def test_classified_on_creation_with_the_reason_in_history(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**triage_settings())
    created = await app.tickets.create(
        SYSTEM,
        NewTicket(
            subject="Password reset needed",
            body="Bonjour, mon mot de passe ne marche plus",
            requester=RequesterInput(email="client@example.org"),
            tags=["web"],
        ),
    )
    assert created.category == "account/password"
    assert created.tags == ["web", "password"]
    stored = await app.tickets.snapshot(created.id)
    assert (stored.category, stored.tags) == ("account/password", ["web", "password"])
    history = await app.tickets.events(SYSTEM, created.id)
    [classified] = [e for e in history if e.kind == "classified"]
    assert classified.data == {
        "plugin": "plugins.triage_rules",
        # Keywords are tried in the order they are listed: the first that matches is named.
        "reason": "rule 'passwords': keyword 'mot de passe'",
    }
    assert classified.changes["category"].old is None
    assert classified.changes["category"].new == "account/password"
    # The ticket can be found by the tag triage added.
    page = await app.tickets.list(SYSTEM, TicketFilters(tag="password"))
    assert [t.id for t in page.items] == [created.id]


async def test_classified_through_the_api(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(**triage_settings())
    seed = await seed_helpdesk(app)
    async with api_client(app) as api:
        response = await api.post(
            "/api/v1/tickets",
            headers=seed.headers("customer"),
            json={"subject": "Payment failed", "body": "card declined"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["category"], body["priority"]) == ("billing", "high")
        events = (
            await api.get(f"/api/v1/tickets/{body['id']}/events", headers=seed.headers("agent"))
        ).json()
    [classified] = [e for e in events if e["kind"] == "classified"]
    assert classified["data"]["reason"] == "rule 'payments': keyword 'payment failed'"
    assert classified["changes"]["priority"] == ["normal", "high"]

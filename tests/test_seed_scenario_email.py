"""The seed's scenario through the e-mail channel, on both engines: a VIP customer's mail
"Ma carte bancaire échoue constamment" is ingested as a raw message, lands as category
billing with its priority raised, is routed to the Billing team (and an agent there by round
robin), and an automation rule then reacts in the worker; every step is in the history with
its reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest

from ticketcore import Priority
from ticketcore.app import App
from ticketcore.domain.automation import RuleInput
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.plugins.channels.email import channel_of
from ticketcore.plugins.channels.email.testing import MailSink, make_mail
from ticketcore.testing import seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


def scenario_settings(sink_port: int) -> dict[str, Any]:
    """E-mail channel, triage rules, VIP directory, routing rules then round robin."""
    return {
        "plugins": {
            "channels": ["email"],
            "routing": ["rules", "round_robin"],
            "plugins": ["triage_rules", "directory_vip"],
        },
        "plugin": {
            "channels": {
                "email": {
                    "addresses": {"support@help.test": ""},
                    "from_name": "Help Desk",
                    "smtp": {"host": "127.0.0.1", "port": sink_port},
                    "smtp_server": {"host": "127.0.0.1", "port": 0},
                }
            },
            "routing": {
                "rules": {
                    "rules": [
                        {"name": "billing", "team": "billing", "categories": ["billing"]},
                        {"name": "outage", "team": "it-ops", "keywords": ["server down"]},
                    ]
                },
                "round_robin": {"default_team": "support"},
            },
            "plugins": {
                "triage_rules": {
                    "rules": [
                        {
                            "name": "passwords",
                            "keywords": ["mot de passe", "password reset"],
                            "category": "account/password",
                        },
                        {
                            "name": "payments",
                            "keywords": ["payment failed", "carte bancaire"],
                            "category": "billing",
                        },
                    ]
                },
                "directory_vip": {"raise_to": "high"},
            },
        },
    }


@pytest.fixture
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


async def test_vip_card_failure_mail_lands_in_billing(
    helpdesk_factory: HelpdeskFactory, sink: MailSink
) -> None:
    app = await helpdesk_factory(**scenario_settings(sink.port))
    seed = await seed_helpdesk(app)
    billing = await app.directory.create_team("Billing", "billing")
    bea = await app.auth.create_user(
        NewUser(email="bea@help.test", name="Bea", role=Role.AGENT, team_ids=[billing])
    )
    ben = await app.auth.create_user(
        NewUser(email="ben@help.test", name="Ben", role=Role.AGENT, team_ids=[billing])
    )
    await app.directory.create_team("IT operations", "it-ops")
    bank = await app.directory.create_organisation("Banque Royale", "banque.example", vip=True)
    await app.db.fetch(
        "UPDATE contact SET organisation = {} WHERE id = {}", bank, seed.customer.contact_id
    )
    await app.automation.create(
        seed.admin,
        msgspec.convert(
            {
                "name": "VIP billing watch",
                "events": ["created"],
                "conditions": [
                    {"field": "category", "op": "is", "value": "billing"},
                    {"field": "requester.vip", "op": "is", "value": True},
                ],
                "actions": [{"type": "add_tags", "tags": ["vip-billing"]}],
            },
            RuleInput,
        ),
    )

    result = await channel_of(app).ingest(
        make_mail(
            sender="Carol Customer <carol@customer.test>",
            subject="Ma carte bancaire échoue constamment",
            body="Bonjour, ma carte bancaire échoue constamment depuis ce matin.",
        ),
        source="test",
    )
    assert result.outcome == "created", result
    assert result.ticket_id is not None
    await app.jobs.drain()  # the automation runs in the worker, after commit

    ticket = await app.tickets.snapshot(result.ticket_id)
    assert ticket.channel == "email"
    assert ticket.requester.email == "carol@customer.test"
    assert ticket.category == "billing"
    assert ticket.priority == Priority.HIGH
    assert ticket.team_id == billing
    assert ticket.assignee_id in (bea.id, ben.id)
    assert ticket.tags == ["vip-billing"]

    events = await app.tickets.events(SYSTEM, ticket.id)
    steps = [e for e in events if e.kind != "automation_fired"]
    kinds = [e.kind for e in steps]
    assert kinds[:5] == ["created", "classified", "enriched", "routed", "routed"], kinds
    _, classified, enriched, by_rule, by_rotation = steps[:5]
    assert classified.data["reason"] == "rule 'payments': keyword 'carte bancaire'"
    assert classified.changes["category"].new == "billing"
    assert enriched.data["reason"] == (
        "VIP requester 'Carol Customer' of 'Banque Royale': priority raised from normal to high"
    )
    assert (enriched.changes["priority"].old, enriched.changes["priority"].new) == (
        "normal",
        "high",
    )
    assert by_rule.data["reason"] == "routed to Billing by rule 'billing' (category 'billing')"
    assert by_rule.changes["team_id"].new == billing
    assert by_rotation.data["reason"].startswith("round robin in Billing: ")
    assert by_rotation.changes["assignee_id"].new == ticket.assignee_id
    tagged = next(e for e in events if e.kind == "updated")
    assert tagged.actor.name == "rule 'VIP billing watch'"
    fired = next(e for e in events if e.kind == "automation_fired")
    assert fired.data["reason"].startswith("rule 'VIP billing watch' matched created")

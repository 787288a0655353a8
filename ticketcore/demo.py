"""Demo data: teams, agents, contacts and sample tickets, so a new install has something to
show. Seeding is idempotent: it does nothing when the database already has users."""

from __future__ import annotations

from typing import Any

import msgspec

from ticketcore.app import App
from ticketcore.domain.commands import NewEntry, NewTicket, NewUser, RequesterInput
from ticketcore.domain.enums import Priority, Role
from ticketcore.domain.models import Principal

DEMO_PLUGINS: dict[str, Any] = {
    "routing": ["rules", "round_robin"],
    "sla": ["policy"],
    "kb": ["articles"],
    "notifiers": ["in_app"],
}
DEMO_PLUGIN_SETTINGS: dict[str, Any] = {
    "sla": {
        "policy": {
            "calendar": {
                "timezone": "Europe/Paris",
                "hours": {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
            },
            "calendars": {"always": {"hours": "24x7"}},
            "rules": [
                {
                    "name": "critical",
                    "match": {"priority": ["critical"]},
                    "first_response": "15m",
                    "resolution": "4h",
                    "calendar": "always",
                },
                {"name": "standard", "first_response": "4h", "resolution": "3d"},
            ],
        }
    },
    "kb": {"articles": {"article_url": "/portal/kb/{id}"}},
    "routing": {
        "rules": {
            "rules": [
                {
                    "name": "payments",
                    "team": "billing",
                    "keywords": [
                        "payment failed",
                        "invoice",
                        "refund",
                        "carte bancaire",
                        "facture",
                    ],
                },
                {
                    "name": "outages",
                    "team": "it-ops",
                    "keywords": ["server down", "outage", "panne"],
                },
            ]
        },
        "round_robin": {"default_team": "support"},
    },
}

_TEAMS = [("Support", "support"), ("Billing", "billing"), ("IT operations", "it-ops")]
_AGENTS = [
    ("alice@demo.ticketcore.test", "Alice Martin", ["support", "billing"]),
    ("bruno@demo.ticketcore.test", "Bruno Costa", ["support"]),
    ("chen@demo.ticketcore.test", "Chen Wei", ["billing"]),
    ("dana@demo.ticketcore.test", "Dana Okafor", ["it-ops"]),
]
_TICKETS = [
    (
        "My payment failed twice",
        "The card payment for invoice 2291 failed twice today.",
        "marie@client.test",
        Priority.HIGH,
    ),
    (
        "Server down in the Lyon office",
        "Since 9:10 nobody can reach the file server.",
        "ops@client.test",
        Priority.CRITICAL,
    ),
    (
        "How do I export my data?",
        "I would like a CSV of all my orders.",
        "jon@client.test",
        Priority.NORMAL,
    ),
    (
        "Mot de passe oublié",
        "Je n'arrive plus à me connecter à mon compte.",
        "lea@client.test",
        Priority.NORMAL,
    ),
    (
        "Refund for a duplicate order",
        "Order 5531 was charged twice.",
        "marie@client.test",
        Priority.NORMAL,
    ),
]

ADMIN_EMAIL = "admin@demo.ticketcore.test"
ADMIN_PASSWORD = "demo-admin"
AGENT_PASSWORD = "demo-agent"
CUSTOMER_EMAIL = "marie@client.test"
CUSTOMER_PASSWORD = "demo-customer"


class DemoLogins(msgspec.Struct, kw_only=True):
    """What ``serve --demo`` prints: who can sign in and a ready API token."""

    admin_email: str
    admin_password: str
    admin_token: str
    agent_email: str
    agent_password: str
    customer_email: str
    customer_password: str
    customer_token: str
    seeded: bool


async def seed_demo(app: App) -> DemoLogins:
    """Fill an empty helpdesk with demo data; always issue fresh tokens to print."""
    has_users = await app.db.fetchval("SELECT COUNT(*) AS n FROM app_user")
    seeded = not has_users
    if seeded:
        team_ids = {slug: await app.directory.create_team(name, slug) for name, slug in _TEAMS}
        await app.auth.create_user(
            NewUser(email=ADMIN_EMAIL, name="Demo Admin", role=Role.ADMIN, password=ADMIN_PASSWORD)
        )
        for email, name, teams in _AGENTS:
            await app.auth.create_user(
                NewUser(
                    email=email,
                    name=name,
                    role=Role.AGENT,
                    password=AGENT_PASSWORD,
                    team_ids=[team_ids[t] for t in teams],
                )
            )
        await app.auth.create_user(
            NewUser(
                email=CUSTOMER_EMAIL,
                name="Marie Dubois",
                role=Role.CUSTOMER,
                password=CUSTOMER_PASSWORD,
            )
        )
        system = Principal.system()
        for subject, body, email, priority in _TICKETS:
            await app.tickets.create(
                system,
                NewTicket(
                    subject=subject,
                    body=body,
                    priority=priority,
                    channel="email",
                    requester=RequesterInput(email=email),
                ),
            )
        alice = await app.auth.user_by_email(_AGENTS[0][0])
        await app.tickets.add_entry(
            alice,
            1,
            NewEntry(body="Sorry about this: we are checking with the payment provider."),
            internal=False,
        )
        await app.tickets.add_entry(
            alice,
            1,
            NewEntry(body="Provider status page shows an incident since 08:00."),
            internal=True,
        )
        await _seed_articles(app)
    admin = await app.auth.user_by_email(ADMIN_EMAIL)
    customer = await app.auth.user_by_email(CUSTOMER_EMAIL)
    return DemoLogins(
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        admin_token=await app.auth.create_token(admin.id, "demo"),
        agent_email=_AGENTS[0][0],
        agent_password=AGENT_PASSWORD,
        customer_email=CUSTOMER_EMAIL,
        customer_password=CUSTOMER_PASSWORD,
        customer_token=await app.auth.create_token(customer.id, "demo"),
        seeded=seeded,
    )


_ARTICLES = (
    (
        "Card payment declined",
        "If your card payment is declined, check that 3-D Secure is enabled for online "
        "payments, then retry. Declines during a provider incident clear within the hour.",
    ),
    (
        "Paiement par carte bancaire refusé",
        "Si votre paiement par carte bancaire échoue, vérifiez que 3-D Secure est activé, "
        "puis réessayez. Pendant un incident du prestataire, réessayez dans l'heure.",
    ),
    (
        "Reset your password",
        "Use the Forgot password link on the sign-in page; the link in the e-mail is valid "
        "for one hour.",
    ),
)


async def _seed_articles(app: App) -> None:
    """A few published articles, when the demo's knowledge base is enabled."""
    from ticketcore.plugins.kb.articles import KnowledgeBase

    plugin = app.pm.get_plugin("kb.articles")
    if not isinstance(plugin, KnowledgeBase) or plugin.store is None:
        return
    now = app.clock.now()
    for title, body in _ARTICLES:
        await plugin.store.insert(
            {"title": title, "body_text": body, "visibility": "public", "status": "published",
             "author_name": "Demo Admin"},
            now,
        )  # fmt: skip

"""The example plugin's own tests, written as a plugin author would: with the fixtures that
``ticketcore[test]`` provides as a pytest plugin (``helpdesk_factory``, ``settings_factory``),
on every database engine TicketCore tests on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

pytest.importorskip(
    "ticketcore_example_plugin",
    reason="ticketcore-example-plugin is not installed (tox -e thirdparty installs it)",
)

from ticketcore_example_plugin.tagger import Config, ExampleTagger

from ticketcore import ConfigError, Contact, Priority, Status, Ticket
from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal

ENABLED = {"plugins": ["example_tagger"]}


def ticket(subject: str, description: str = "") -> Ticket:
    """A ticket snapshot to classify."""
    now = datetime(2026, 1, 5, tzinfo=UTC)
    return Ticket(
        id=1,
        key="k",
        subject=subject,
        status=Status.NEW,
        priority=Priority.NORMAL,
        category=None,
        channel="email",
        requester=Contact(id=1, name="Carol"),
        team_id=None,
        assignee_id=None,
        tags=[],
        custom_fields={},
        version=1,
        created_at=now,
        updated_at=now,
        description=description,
    )


@pytest.mark.parametrize(
    ("subject", "description", "tagged"),
    [
        ("Printer on fire", "", True),
        ("Help", "the PRINTER again", True),
        ("Printers are fine", "", False),
        ("Monitor flickers", "", False),
    ],
)
def test_classify_ticket_matches_whole_words(subject: str, description: str, tagged: bool) -> None:
    tagger = ExampleTagger(Config(keyword="printer", tag="hardware"))

    answer = tagger.classify_ticket(ticket=ticket(subject, description), context={})

    assert (answer is not None) is tagged
    if answer is not None:
        assert answer.tags == ["hardware"]
        assert answer.reason == "mentions 'printer'"


async def test_enabled_plugin_tags_new_tickets(
    helpdesk_factory: Callable[..., Awaitable[App]],
) -> None:
    app = await helpdesk_factory(
        plugins=ENABLED, plugin={"plugins": {"example_tagger": {"keyword": "vpn"}}}
    )

    created = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="VPN down", requester=RequesterInput(email="carol@example.org")),
    )

    assert created.tags == ["example"]
    events = await app.tickets.events(Principal.system(), created.id)
    assert [e.data.get("plugin") for e in events if e.kind == "classified"] == [
        "plugins.example_tagger"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "Object missing required field `keyword`"),
        ({"keyword": "vpn", "colour": "red"}, "unknown setting(s) colour"),
        ({"keyword": 3}, "Expected `str`, got `int` - at `$.keyword`"),
    ],
)
async def test_settings_are_validated(
    helpdesk_factory: Callable[..., Awaitable[App]], table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await helpdesk_factory(plugins=ENABLED, plugin={"plugins": {"example_tagger": table}})

    (problem,) = caught.value.problems
    assert problem.startswith("plugin.plugins.example_tagger: ")
    assert message in problem

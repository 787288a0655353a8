"""A separately installed plugin package (``tests/third_party_plugin``) is discovered through
its entry point, enabled by configuration only, and never imported when not enabled.

These tests need ``ticketcore-example-plugin`` installed: ``tox -e thirdparty`` installs it
with pip. Elsewhere they are skipped with that reason (nothing is imported to find out).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Awaitable, Callable

import pytest

from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.plugin_manager import installed_plugins
from ticketcore.testing import api_client, seed_helpdesk

DISTRIBUTION = "ticketcore-example-plugin"
PACKAGE = "ticketcore_example_plugin"

try:
    VERSION = importlib.metadata.version(DISTRIBUTION)
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        f"{DISTRIBUTION} is not installed: `tox -e thirdparty` installs it "
        "(or `pip install ./tests/third_party_plugin`)",
        allow_module_level=True,
    )


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture
def unimported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget any import of the plugin package made earlier in this session (restored
    afterwards), so "not imported" is checked from a clean state whatever the test order."""
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        monkeypatch.delitem(sys.modules, name)


def test_discovered_through_its_entry_point(unimported: None) -> None:
    found = [p for p in installed_plugins() if p.name == "example_tagger"]

    assert len(found) == 1, found
    (plugin,) = found
    assert (plugin.kind, plugin.target) == ("plugins", f"{PACKAGE}.tagger")
    assert normalized(plugin.distribution) == DISTRIBUTION
    assert plugin.version == VERSION
    assert PACKAGE not in sys.modules, "discovery reads metadata only"


async def test_enabled_by_config_its_hook_is_active(
    helpdesk_factory: Callable[..., Awaitable[App]],
) -> None:
    app = await helpdesk_factory(
        plugins={"plugins": ["example_tagger"]},
        plugin={"plugins": {"example_tagger": {"keyword": "printer", "tag": "hardware"}}},
    )

    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="The printer is on fire", requester=RequesterInput(email="c@x.org")),
    )

    assert ticket.tags == ["hardware"]
    assert (await app.tickets.snapshot(ticket.id)).tags == ["hardware"]
    classified = [
        e for e in await app.tickets.events(Principal.system(), ticket.id) if e.kind == "classified"
    ]
    assert [(e.data["plugin"], e.data["reason"]) for e in classified] == [
        ("plugins.example_tagger", "mentions 'printer'")
    ]
    (loaded,) = app.plugins
    assert (normalized(loaded.distribution), loaded.version) == (DISTRIBUTION, VERSION)
    assert loaded.hooks == ["classify_ticket"]

    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        listed = (await client.get("/api/v1/plugins", headers=seed.headers("admin"))).json()
    assert [(p["name"], p["config"]) for p in listed] == [
        ("example_tagger", {"keyword": "printer", "tag": "hardware"})
    ]


async def test_not_enabled_it_is_never_imported(
    unimported: None, helpdesk_factory: Callable[..., Awaitable[App]]
) -> None:
    app = await helpdesk_factory(plugins={"routing": ["rules"]})

    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="The printer is on fire", requester=RequesterInput(email="c@x.org")),
    )

    assert ticket.tags == []
    assert [p.name for p in app.plugins] == ["rules"]
    assert PACKAGE not in sys.modules
    assert f"{PACKAGE}.tagger" not in sys.modules

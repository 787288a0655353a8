"""The plugin manager with real entry points: what is enabled is loaded, nothing else is.

Plugins here are throwaway distributions written into a folder put on ``sys.path`` (a
``<name>-<version>.dist-info`` with METADATA and entry_points.txt, plus the modules), so
``importlib.metadata`` and stevedore discover them exactly as they would a package installed
with pip: nothing about discovery or import is mocked. Their modules are named ``tcfake_*``
and are removed from ``sys.modules`` after each test.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketcore import ConfigError, hookimpl
from ticketcore.app import App, create_helpdesk
from ticketcore.config import REDACTED, Settings, settings_from_mapping
from ticketcore.hooks import Hooks
from ticketcore.plugin_manager import build_plugin_manager, installed_plugins
from ticketcore.testing import api_client, seed_helpdesk

PREFIX = "tcfake_"


class FakeDistributions:
    """Writes installed-looking distributions into one folder that is on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(
        self,
        name: str,
        entry_points: dict[str, dict[str, str]],
        modules: dict[str, str],
        version: str = "1.0",
    ) -> None:
        """Install distribution ``name``: ``entry_points`` maps group to {name: target},
        ``modules`` maps a module name (``tcfake_...``) to its source."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines: list[str] = []
        for group, points in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{ep} = {target}" for ep, target in points.items()]
            lines.append("")
        (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
        for module, source in modules.items():
            assert module.startswith(PREFIX), "name test modules tcfake_* so they are cleaned up"
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDistributions]:
    """A folder of throwaway distributions on ``sys.path`` for this test only."""
    root = tmp_path / "site-packages"
    root.mkdir()
    # stevedore keeps an on-disk cache of entry-point scans: keep it out of the user's home.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.syspath_prepend(str(root))
    yield FakeDistributions(root)
    for module in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[module]


def settings(**data: Any) -> Settings:
    """Settings without a database file (building a plugin manager never connects)."""
    return settings_from_mapping(data, env={})


def problems_of(data: dict[str, Any], extra: list[tuple[str, Any]] | None = None) -> list[str]:
    """The problems a ConfigError reports for these settings."""
    with pytest.raises(ConfigError) as caught:
        build_plugin_manager(settings(**data), extra or [])
    return caught.value.problems


BOMB = '''
"""Raises when imported: proves a module was (or was not) imported."""
raise RuntimeError("tcfake_bomb must never be imported")
'''

QUIET = '''
"""A plugin that does nothing but exist."""
from ticketcore import hookimpl


@hookimpl
def configure(settings):
    return None
'''

TYPED = '''
"""Typed settings: a required keyword and a number with a default."""
import msgspec
from ticketcore import Classification, hookimpl


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    keyword: str
    retries: int = 3


class Typed:
    """Tags tickets mentioning the keyword."""

    def __init__(self, config):
        self.config = config

    @hookimpl
    def classify_ticket(self, ticket, context):
        if self.config.keyword in ticket.subject:
            return Classification(reason="keyword", tags=[self.config.keyword])
        return None


def create(config):
    return Typed(config)
'''

MISSPELLED = '''
"""Implements a hook whose name is misspelled."""
from ticketcore import hookimpl


@hookimpl
def clasify_ticket(ticket, context):
    return None
'''


def kb_plugin(name: str) -> str:
    """Source of a plugin whose ``kb_search`` answers with one hit naming itself."""
    return f'''
"""Knowledge source {name}."""
from ticketcore import KbHit, hookimpl


@hookimpl
def kb_search(query, limit):
    return [KbHit(source="{name}", title=query, url="https://kb.example/{name}")]
'''


# --- (a) installed but not enabled ----------------------------------------------------------


async def test_installed_but_not_enabled_is_never_imported(
    dists: FakeDistributions, helpdesk_factory: Callable[..., Awaitable[App]]
) -> None:
    dists.add(
        "tc-fake-suite",
        {"ticketcore.plugins": {"bomb": "tcfake_bomb", "quiet": "tcfake_quiet"}},
        {"tcfake_bomb": BOMB, "tcfake_quiet": QUIET},
        version="2.5.1",
    )
    app = await helpdesk_factory(plugins={"plugins": ["quiet"]})

    assert [p.qualified_name for p in app.plugins] == ["plugins.quiet"]
    assert "tcfake_quiet" in sys.modules
    assert "tcfake_bomb" not in sys.modules
    listed = {(p.kind, p.name): p for p in installed_plugins()}
    assert listed["plugins", "bomb"].distribution == "tc-fake-suite"
    assert listed["plugins", "bomb"].version == "2.5.1"
    assert listed["plugins", "bomb"].target == "tcfake_bomb"
    assert "tcfake_bomb" not in sys.modules, "listing installed plugins must not import them"


# --- (b) broken, (c) missing ----------------------------------------------------------------


def test_broken_enabled_plugin_stops_start_up_naming_it(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-bomb", {"ticketcore.plugins": {"bomb": "tcfake_bomb"}}, {"tcfake_bomb": BOMB}
    )

    with pytest.raises(ConfigError) as caught:
        create_helpdesk(settings(plugins={"plugins": ["bomb"]}))

    assert caught.value.problems == [
        "plugins.bomb: failed to load tcfake_bomb: RuntimeError: tcfake_bomb must never be imported"
    ]
    assert "plugins.bomb" in str(caught.value)


def test_enabled_but_not_installed_is_reported() -> None:
    assert problems_of({"plugins": {"routing": ["rules", "teleporter"]}}) == [
        "routing.teleporter: enabled in settings but not installed "
        "(no entry point 'teleporter' in ticketcore.routing)"
    ]


# --- (d) one report -------------------------------------------------------------------------


def test_every_problem_is_reported_in_one_config_error(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-many",
        {
            "ticketcore.plugins": {
                "bomb": "tcfake_bomb",
                "typed": "tcfake_typed",
                "typo": "tcfake_misspelled",
            },
        },
        {"tcfake_bomb": BOMB, "tcfake_typed": TYPED, "tcfake_misspelled": MISSPELLED},
    )

    class AlsoMisspelled:
        """A directly registered plugin with a misspelled hook."""

        @hookimpl
        def notfy(self, notification: Any) -> None:
            """Misspelled ``notify``."""

    problems = problems_of(
        {
            "plugins": {
                "plugins": ["bomb", "typed", "typo", "ghost", "typo"],
                "routing": ["rules"],
            },
            "plugin": {
                "plugins": {"typed": {"keyword": "x", "retries": "three"}},
                "routing": {"rules": {"rulez": []}},
            },
        },
        extra=[("also", AlsoMisspelled())],
    )

    expected = [
        "plugins.plugins: listed twice: typo",
        "plugins.bomb: failed to load tcfake_bomb",
        "plugins.ghost: enabled in settings but not installed",
        "plugin.plugins.typed: Expected `int`, got `str` - at `$.retries`",
        "plugin.routing.rules: unknown setting(s) rulez; known: rules",
        "plugins.typo: implements unknown hook 'clasify_ticket' (misspelled?)",
        "also: implements unknown hook 'notfy' (misspelled?)",
    ]
    assert len(problems) == len(expected), problems
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)


def test_misspelled_hooks_of_several_plugins_are_all_reported(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-typo",
        {"ticketcore.plugins": {"typo": "tcfake_misspelled"}},
        {"tcfake_misspelled": MISSPELLED},
    )

    class Direct:
        """Registered directly, misspelling ``route_ticket``."""

        @hookimpl
        def route_tickets(self, ticket: Any, context: Any) -> None:
            """Misspelled."""

    assert problems_of({"plugins": {"plugins": ["typo"]}}, extra=[("direct", Direct())]) == [
        "plugins.typo: implements unknown hook 'clasify_ticket' (misspelled?)",
        "direct: implements unknown hook 'route_tickets' (misspelled?)",
    ]


# --- (e) plugin settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            {"keyword": "vip", "colour": "red"},
            "plugin.plugins.typed: unknown setting(s) colour; known: keyword, retries",
        ),
        (
            {"keyword": "vip", "retries": "3"},
            "plugin.plugins.typed: Expected `int`, got `str` - at `$.retries`",
        ),
        (
            {"keyword": ["vip"]},
            "plugin.plugins.typed: Expected `str`, got `array` - at `$.keyword`",
        ),
        ({}, "plugin.plugins.typed: Object missing required field `keyword`"),
    ],
    ids=["unknown-key", "wrong-type", "wrong-type-list", "missing-required"],
)
def test_plugin_settings_are_validated_naming_the_key(
    dists: FakeDistributions, table: dict[str, Any], problem: str
) -> None:
    dists.add(
        "tc-fake-typed", {"ticketcore.plugins": {"typed": "tcfake_typed"}}, {"tcfake_typed": TYPED}
    )

    assert problems_of(
        {"plugins": {"plugins": ["typed"]}, "plugin": {"plugins": {"typed": table}}}
    ) == [problem]


def test_valid_plugin_settings_reach_create_typed(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-typed", {"ticketcore.plugins": {"typed": "tcfake_typed"}}, {"tcfake_typed": TYPED}
    )

    _, loaded = build_plugin_manager(
        settings(
            plugins={"plugins": ["typed"]},
            plugin={"plugins": {"typed": {"keyword": "vip"}}},
        )
    )

    (plugin,) = loaded
    assert type(plugin.config).__name__ == "Config"
    assert (plugin.config.keyword, plugin.config.retries) == ("vip", 3)
    assert plugin.obj.config is plugin.config
    assert plugin.raw_config == {"keyword": "vip"}
    assert plugin.hooks == ["classify_ticket"]
    assert plugin.description == "Typed settings: a required keyword and a number with a default."


def test_plugin_without_config_given_settings_is_rejected(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-quiet", {"ticketcore.plugins": {"quiet": "tcfake_quiet"}}, {"tcfake_quiet": QUIET}
    )

    assert problems_of(
        {"plugins": {"plugins": ["quiet"]}, "plugin": {"plugins": {"quiet": {"volume": 3}}}}
    ) == ["plugin.plugins.quiet: takes no settings, got volume"]


def test_failing_create_is_reported(dists: FakeDistributions) -> None:
    source = '''
    """create() refuses its settings."""


    def create(config):
        raise ValueError("no licence key")
    '''
    dists.add(
        "tc-fake-create",
        {"ticketcore.plugins": {"picky": "tcfake_picky"}},
        {"tcfake_picky": source},
    )

    assert problems_of({"plugins": {"plugins": ["picky"]}}) == [
        "plugins.picky: create() failed: ValueError: no licence key"
    ]


# --- (f) hooks that do not fit the contract -------------------------------------------------


def test_misspelled_hook_is_reported(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-typo",
        {"ticketcore.plugins": {"typo": "tcfake_misspelled"}},
        {"tcfake_misspelled": MISSPELLED},
    )

    assert problems_of({"plugins": {"plugins": ["typo"]}}) == [
        "plugins.typo: implements unknown hook 'clasify_ticket' (misspelled?)"
    ]


def test_hookimpl_with_an_argument_the_spec_lacks_cannot_register(
    dists: FakeDistributions,
) -> None:
    source = '''
    """Asks route_ticket for an argument that the host never passes."""
    from ticketcore import hookimpl


    @hookimpl
    def route_ticket(ticket, context, weather):
        return None
    '''
    dists.add(
        "tc-fake-args",
        {"ticketcore.routing": {"weather": "tcfake_weather"}},
        {"tcfake_weather": source},
    )

    (problem,) = problems_of({"plugins": {"routing": ["weather"]}})
    assert problem.startswith("routing.weather: cannot register:")
    assert "weather" in problem.removeprefix("routing.weather: cannot register:")


# --- (g) config order is call order ---------------------------------------------------------


@pytest.mark.parametrize("order", [["alpha", "beta", "gamma"], ["gamma", "alpha", "beta"]])
def test_config_order_is_call_order(dists: FakeDistributions, order: list[str]) -> None:
    dists.add(
        "tc-fake-kb",
        {"ticketcore.kb": {n: f"tcfake_kb_{n}" for n in ("alpha", "beta", "gamma")}},
        {f"tcfake_kb_{n}": kb_plugin(n) for n in ("alpha", "beta", "gamma")},
    )

    class Extra:
        """Registered directly: called after every configured plugin."""

        @hookimpl
        def kb_search(self, query: str, limit: int) -> list[Any]:
            """No hits, but proves the position."""
            from ticketcore import KbHit

            return [KbHit(source="extra", title=query, url="")]

    pm, loaded = build_plugin_manager(settings(plugins={"kb": order}), [("extra", Extra())])

    assert [p.name for p in loaded] == order
    assert Hooks(pm).implementers("kb_search") == [f"kb.{n}" for n in order] + ["extra"]
    results = pm.hook.kb_search(query="printer", limit=5)
    assert [hits[0].source for hits in results] == [*order, "extra"]


@pytest.mark.parametrize(
    ("chain", "assigned"),
    [(["rules", "round_robin"], True), (["round_robin", "rules"], False)],
    ids=["rules-then-round-robin", "round-robin-then-rules"],
)
async def test_routing_chain_runs_in_config_order(
    helpdesk_factory: Callable[..., Awaitable[App]], chain: list[str], assigned: bool
) -> None:
    """Rules picks the team, round robin an agent of the ticket's team: only in that order
    does a ticket get both (round robin first sees no team yet and passes)."""
    from ticketcore.domain.commands import NewTicket, RequesterInput
    from ticketcore.domain.models import Principal

    app = await helpdesk_factory(
        plugins={"routing": chain},
        plugin={
            "routing": {
                "rules": {
                    "rules": [{"name": "printers", "team": "support", "keywords": ["printer"]}]
                }
            }
        },
    )
    seed = await seed_helpdesk(app)

    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="The printer jams", requester=RequesterInput(email="c@example.org")),
    )

    assert ticket.team_id == seed.team_id
    assert (ticket.assignee_id == seed.agent.id) is assigned
    if not assigned:
        assert ticket.assignee_id is None
    history = await app.tickets.events(Principal.system(), ticket.id)
    routed = [e.data["plugin"] for e in history if e.kind == "routed"]
    expected = ["routing.rules", "routing.round_robin"] if assigned else ["routing.rules"]
    assert routed == expected


# --- (h) secrets ----------------------------------------------------------------------------

VAULT = '''
"""Talks to a vault with a token."""
import msgspec
from ticketcore import hookimpl


class Hook(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    signing_key: str


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    endpoint: str
    api_token: str
    dsn: str
    hooks: list[Hook] = []


class Vault:
    def __init__(self, config):
        self.config = config

    @hookimpl
    def configure(self, settings):
        return None


def create(config):
    return Vault(config)
'''


async def test_secrets_are_resolved_and_redacted_everywhere_shown(
    dists: FakeDistributions, helpdesk_factory: Callable[..., Awaitable[App]]
) -> None:
    dists.add(
        "tc-fake-vault", {"ticketcore.plugins": {"vault": "tcfake_vault"}}, {"tcfake_vault": VAULT}
    )
    env = {
        "TC_VAULT_TOKEN": "tok-0001-secret",
        "TC_VAULT_DSN": "vault://user:pw-0002@host",
        "TC_HOOK_KEY": "key-0003-secret",
    }
    app = await helpdesk_factory(
        env=env,
        plugins={"plugins": ["vault"]},
        plugin={
            "plugins": {
                "vault": {
                    "endpoint": "https://vault.example",
                    "api_token": {"env": "TC_VAULT_TOKEN"},
                    # not a secret by its name: redacted because it came from the environment
                    "dsn": {"env": "TC_VAULT_DSN"},
                    "hooks": [{"url": "https://h.example", "signing_key": {"env": "TC_HOOK_KEY"}}],
                }
            }
        },
    )

    (plugin,) = app.plugins
    assert plugin.config.api_token == "tok-0001-secret"
    assert plugin.config.dsn == "vault://user:pw-0002@host"
    assert plugin.config.hooks[0].signing_key == "key-0003-secret"
    assert plugin.raw_config == {
        "endpoint": "https://vault.example",
        "api_token": REDACTED,
        "dsn": REDACTED,
        "hooks": [{"url": "https://h.example", "signing_key": REDACTED}],
    }

    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        response = await client.get("/api/v1/plugins", headers=seed.headers("admin"))
    assert response.status_code == 200, response.text
    (shown,) = response.json()
    assert shown["config"] == plugin.raw_config
    assert (shown["distribution"], shown["version"]) == ("tc-fake-vault", "1.0")
    for secret in env.values():
        assert secret not in response.text


def test_missing_environment_variable_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(
            {"plugin": {"plugins": {"vault": {"api_token": {"env": "TC_NOT_SET_ANYWHERE"}}}}},
            env={},
            source="helpdesk.toml",
        )

    assert caught.value.problems == [
        "helpdesk.toml: plugin.plugins.vault.api_token: "
        "environment variable TC_NOT_SET_ANYWHERE is not set"
    ]


# --- discovery details ----------------------------------------------------------------------


def test_plugin_installed_after_a_first_scan_is_found_with_its_distribution(
    dists: FakeDistributions,
) -> None:
    """A scan of a namespace must not hide what is installed later (stevedore caches scans
    per namespace for the whole process), and cached entry points must keep their
    distribution (stevedore's lose it, so name and version showed as "?")."""
    build_plugin_manager(settings(plugins={"routing": ["rules"]}))
    dists.add(
        "tc-fake-late",
        {"ticketcore.routing": {"late": "tcfake_quiet"}},
        {"tcfake_quiet": QUIET},
        version="0.3",
    )

    _, loaded = build_plugin_manager(settings(plugins={"routing": ["rules", "late"]}))

    assert [(p.name, p.distribution, p.version, p.module) for p in loaded] == [
        ("rules", "ticketcore", "0.1.0", "ticketcore.plugins.routing.rules"),
        ("late", "tc-fake-late", "0.3", "tcfake_quiet"),
    ]


def test_name_provided_by_two_distributions_is_reported(dists: FakeDistributions) -> None:
    dists.add(
        "tc-fake-one", {"ticketcore.plugins": {"twin": "tcfake_quiet"}}, {"tcfake_quiet": QUIET}
    )
    dists.add(
        "tc-fake-two",
        {"ticketcore.plugins": {"twin": "tcfake_twin"}},
        {"tcfake_twin": QUIET.replace("nothing but exist", "the same, twice")},
    )

    (problem,) = problems_of({"plugins": {"plugins": ["twin"]}})
    assert problem.startswith("plugins.twin: provided more than once: ")
    assert "tcfake_quiet (tc-fake-one)" in problem
    assert "tcfake_twin (tc-fake-two)" in problem


def test_settings_for_a_plugin_that_is_not_installed_are_reported() -> None:
    """A settings table with a misspelled plugin name stops start-up instead of being ignored;
    settings of an installed plugin that is merely disabled are accepted."""
    settings = settings_from_mapping(
        {
            "plugin": {
                "routing": {"round_robbin": {"default_team": "support"}, "rules": {"rules": []}}
            }
        },
        env={},
    )
    with pytest.raises(ConfigError) as caught:
        build_plugin_manager(settings)
    assert caught.value.problems == [
        "plugin.routing.round_robbin: settings for a plugin that is not installed "
        "(no entry point 'round_robbin' in ticketcore.routing)"
    ]

"""Boot hooks, on both engines: configure, startup/shutdown, register_tables,
register_routes and register_jobs.

Test plugins are plain objects with ``@hookimpl`` methods, registered through
``helpdesk_factory(extra_plugins=[(name, obj)])``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import get
from piccolo.columns import Serial, Varchar
from piccolo.table import Table

from ticketcore import ConfigError, Settings, hookimpl
from ticketcore.app import App
from ticketcore.jobs import JobRecord
from ticketcore.testing import api_client, seed_helpdesk
from ticketcore.web.auth import HelpdeskDep

HelpdeskFactory = Callable[..., Awaitable[App]]


# --- configure ------------------------------------------------------------------------------


class Configured:
    """Keeps the settings ``configure`` gave it."""

    def __init__(self) -> None:
        self.seen: list[Settings] = []

    @hookimpl
    def configure(self, settings: Settings) -> None:
        """Record the settings."""
        self.seen.append(settings)


async def test_configure_gets_the_settings_once(helpdesk_factory: HelpdeskFactory) -> None:
    plugin = Configured()

    app = await helpdesk_factory(extra_plugins=[("configured", plugin)])

    assert plugin.seen == [app.settings]


async def test_configure_is_historic_for_late_registered_plugins(
    helpdesk: App, plugin_registrar: Callable[[Any, str], None]
) -> None:
    late = Configured()

    plugin_registrar(late, "late")

    assert late.seen == [helpdesk.settings], "a late plugin still receives configure"


# --- startup / shutdown ---------------------------------------------------------------------


class Lifecycle:
    """Records startup and shutdown calls; can be async and can fail in either."""

    def __init__(
        self,
        name: str,
        log: list[str],
        *,
        is_async: bool = False,
        fail_startup: bool = False,
        fail_shutdown: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.is_async = is_async
        self.fail_startup = fail_startup
        self.fail_shutdown = fail_shutdown
        self.apps: list[App] = []

    def _run(self, what: str, app: App, fail: bool) -> Any:
        def act() -> None:
            self.log.append(f"{self.name}.{what}")
            self.apps.append(app)
            if fail:
                raise RuntimeError(f"{self.name} cannot {what}")

        if not self.is_async:
            act()
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            act()

        return later()

    @hookimpl
    def startup(self, app: App) -> Any:
        """Take resources (here: a note in the log)."""
        return self._run("startup", app, self.fail_startup)

    @hookimpl
    def shutdown(self, app: App) -> Any:
        """Release them."""
        return self._run("shutdown", app, self.fail_shutdown)


async def test_startup_runs_sync_and_async_plugins_with_the_app(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    log: list[str] = []
    sync, asynchronous = Lifecycle("sync", log), Lifecycle("async", log, is_async=True)

    app = await helpdesk_factory(extra_plugins=[("sync", sync), ("async", asynchronous)])

    assert sorted(log) == ["async.startup", "sync.startup"]
    assert sync.apps == [app] and asynchronous.apps == [app]
    assert await app.db.fetchval("SELECT 1 AS ok") == 1, "startup runs after connecting"


async def test_failing_startup_stops_start_naming_the_plugin(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    log: list[str] = []

    with pytest.raises(ConfigError) as caught:
        await helpdesk_factory(
            extra_plugins=[
                ("fine", Lifecycle("fine", log)),
                ("broken", Lifecycle("broken", log, is_async=True, fail_startup=True)),
            ]
        )

    assert caught.value.problems == ["broken: startup failed: RuntimeError: broken cannot startup"]
    # The plugin that did start is shut down again; the broken one is not asked to.
    assert sorted(log) == ["broken.startup", "fine.shutdown", "fine.startup"]


async def test_shutdown_failures_are_isolated(helpdesk_factory: HelpdeskFactory) -> None:
    log: list[str] = []
    app = await helpdesk_factory(
        extra_plugins=[
            ("sync_fails", Lifecycle("sync_fails", log, fail_shutdown=True)),
            ("async_fails", Lifecycle("async_fails", log, is_async=True, fail_shutdown=True)),
            ("sync_ok", Lifecycle("sync_ok", log)),
            ("async_ok", Lifecycle("async_ok", log, is_async=True)),
        ]
    )
    log.clear()

    await app.stop()  # must not raise

    assert sorted(log) == [
        "async_fails.shutdown",
        "async_ok.shutdown",
        "sync_fails.shutdown",
        "sync_ok.shutdown",
    ]
    await app.stop()
    assert len(log) == 4, "a stopped helpdesk does not run shutdown twice"


# --- register_tables ------------------------------------------------------------------------


class PluginNote(Table, tablename="tc_test_plugin_note"):
    """A table that belongs to a plugin."""

    id = Serial(primary_key=True)
    text = Varchar(length=200)


class NotesPlugin:
    """Stores notes in its own table."""

    @hookimpl
    def register_tables(self) -> list[type[Table]]:
        """The plugin's tables."""
        return [PluginNote]


async def test_plugin_table_is_created_by_migrate(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(extra_plugins=[("notes", NotesPlugin())])

    assert PluginNote in app.plugin_tables
    await PluginNote.insert(PluginNote(text="stored by a plugin"))
    rows = await app.db.fetch("SELECT text FROM tc_test_plugin_note")
    assert rows == [{"text": "stored by a plugin"}]

    await app.stop()
    await app.start()  # migrating again keeps the table and its rows
    assert await PluginNote.select(PluginNote.text) == [{"text": "stored by a plugin"}]


# --- register_routes ------------------------------------------------------------------------


class RoutesPlugin:
    """Adds two endpoints to the web application."""

    @hookimpl
    def register_routes(self) -> list[Any]:
        """A plain route and one that uses the helpdesk dependency."""

        @get("/plugins/hello", sync_to_thread=False)
        def hello() -> dict[str, str]:
            return {"hello": "from a plugin"}

        @get("/plugins/db")
        async def database(helpdesk: HelpdeskDep) -> dict[str, str]:
            return {"dialect": helpdesk.db.dialect}

        return [hello, database]


async def test_plugin_routes_are_served(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(extra_plugins=[("routes", RoutesPlugin())])

    async with api_client(app) as client:
        hello = await client.get("/plugins/hello")
        database = await client.get("/plugins/db")
        schema = await client.get("/schema/openapi.json")

    assert hello.status_code == 200 and hello.json() == {"hello": "from a plugin"}
    assert database.json() == {"dialect": app.db.dialect}
    assert "/plugins/hello" in schema.json()["paths"]


# --- register_jobs --------------------------------------------------------------------------


class JobsPlugin:
    """Registers the job kinds it is given, recording what each job received."""

    def __init__(self, *kinds: str) -> None:
        self.kinds = kinds
        self.ran: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def register_jobs(self) -> dict[str, Any]:
        """One handler per kind."""

        def handler_for(kind: str) -> Callable[[App, JobRecord], Awaitable[None]]:
            async def handle(app: App, job: JobRecord) -> None:
                assert job.kind == kind
                self.ran.append((kind, dict(job.payload)))

            return handle

        return {kind: handler_for(kind) for kind in self.kinds}


async def test_plugin_job_kind_runs_through_the_job_queue(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    plugin = JobsPlugin("tc_test.reindex")
    app = await helpdesk_factory(extra_plugins=[("indexer", plugin)])

    async with app.db.transaction():
        await app.jobs.enqueue("tc_test.reindex", {"article": 7}, key="reindex:7")
        await app.jobs.enqueue("tc_test.reindex", {"article": 7}, key="reindex:7")  # same key
    ran = await app.jobs.drain()

    assert ran == 1
    assert plugin.ran == [("tc_test.reindex", {"article": 7})]
    assert await app.jobs.counts() == {"done": 1}


@pytest.mark.parametrize(
    ("plugins", "problem"),
    [
        (
            [("one", JobsPlugin("tc_test.sync")), ("two", JobsPlugin("tc_test.sync"))],
            "two: job kind 'tc_test.sync' is already registered",
        ),
        ([("greedy", JobsPlugin("notify"))], "greedy: job kind 'notify' is already registered"),
    ],
    ids=["two-plugins", "core-kind"],
)
async def test_duplicate_job_kinds_stop_start_up(
    helpdesk_factory: HelpdeskFactory, plugins: list[tuple[str, Any]], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await helpdesk_factory(extra_plugins=plugins)

    assert caught.value.problems == [problem]


async def test_seeded_helpdesk_lists_no_plugin_for_extra_objects(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    """Objects given as extra_plugins are registered for hooks but are not configured
    plugins: GET /api/v1/plugins lists only what the settings enabled."""
    app = await helpdesk_factory(
        plugins={"routing": ["round_robin"]}, extra_plugins=[("notes", NotesPlugin())]
    )
    seed = await seed_helpdesk(app)

    async with api_client(app) as client:
        listed = await client.get("/api/v1/plugins", headers=seed.headers("agent"))

    assert [(p["kind"], p["name"], p["hooks"]) for p in listed.json()] == [
        ("routing", "round_robin", ["route_ticket"])
    ]
    assert listed.json()[0]["distribution"] == "ticketcore"

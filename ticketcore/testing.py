"""Pytest fixtures for TicketCore and its plugins (registered as the ``ticketcore`` pytest11
plugin, so a plugin package gets them just by installing ticketcore[test]).

Every database fixture runs once per engine: SQLite, and PostgreSQL when reachable. Without
PostgreSQL those runs are skipped with the reason, unless ``TICKETCORE_REQUIRE_POSTGRES=1``
(CI) turns the skip into a failure. Each PostgreSQL test gets its own schema, dropped after.
``TICKETCORE_TEST_ENGINES=sqlite`` (or ``postgres``, or a comma-separated list) runs only the
engines named: the runs of the others are deselected.

Fixtures: ``db_url``, ``settings_factory``, ``helpdesk_factory``, ``helpdesk``, ``seed``,
``api`` (an httpx client bound to the web app), ``plugin_registrar``, ``clock``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio

from ticketcore.app import App, create_helpdesk
from ticketcore.clock import FrozenClock
from ticketcore.config import Settings, settings_from_mapping
from ticketcore.db.database import Database
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal

POSTGRES_URL = os.environ.get(
    "TICKETCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
ENGINES = ("sqlite", "postgres")


def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}: {exc})"
    return None


_PG_PROBLEM: list[str | None] = []


def postgres_problem() -> str | None:
    """Cached probe of the test PostgreSQL server."""
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_problem())
    return _PG_PROBLEM[0]


def selected_engines() -> tuple[str, ...]:
    """The engines named by ``TICKETCORE_TEST_ENGINES`` (comma-separated), all by default."""
    raw = os.environ.get("TICKETCORE_TEST_ENGINES", "")
    chosen = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(ENGINES))
    if unknown:
        raise pytest.UsageError(
            f"TICKETCORE_TEST_ENGINES={raw!r}: unknown engine(s) {', '.join(unknown)}; "
            f"choose among {', '.join(ENGINES)}"
        )
    return chosen or ENGINES


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``db`` marker; check ``TICKETCORE_TEST_ENGINES`` early."""
    config.addinivalue_line("markers", "db: runs once per database engine")
    selected_engines()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the runs of engines that ``TICKETCORE_TEST_ENGINES`` does not name."""
    selected = selected_engines()
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("db_engine") if callspec is not None else None
        (dropped if engine is not None and engine not in selected else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(params=ENGINES)
def db_engine(request: pytest.FixtureRequest) -> str:
    """The engine of this run: ``sqlite`` or ``postgres`` (skipped with the reason if absent,
    failed instead when TICKETCORE_REQUIRE_POSTGRES=1; skipped as "engine not selected" when
    TICKETCORE_TEST_ENGINES leaves it out and collection did not already deselect it)."""
    engine: str = request.param
    if engine not in selected_engines():
        chosen = os.environ.get("TICKETCORE_TEST_ENGINES")
        pytest.skip(f"engine not selected (TICKETCORE_TEST_ENGINES={chosen})")
    if engine == "postgres":
        problem = postgres_problem()
        if problem:
            if os.environ.get("TICKETCORE_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"{problem}; TICKETCORE_REQUIRE_POSTGRES=1 demands it")
            pytest.skip(problem)
    return engine


@pytest.fixture
def db_url(db_engine: str, tmp_path: Any) -> Iterator[str]:
    """A database URL for an empty database of the engine under test."""
    if db_engine == "sqlite":
        yield f"sqlite:///{tmp_path}/helpdesk.db"
        return
    import asyncio

    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}search_path={schema}"
    finally:
        asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only with ``clock.advance(minutes=30)``."""
    return FrozenClock()


@pytest.fixture
def settings_factory(db_url: str, tmp_path: Any) -> Callable[..., Settings]:
    """Build Settings for this test's database: ``settings_factory(plugins={...}, ...)``.

    ``env={"NAME": "value"}`` is the environment that ``{ env = "NAME" }`` settings are read
    from (empty by default, so the real environment never leaks into a test).
    """

    def make(*, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        data: dict[str, Any] = {
            "database": {"url": db_url},
            "storage_dir": str(tmp_path / "attachments"),
        }
        data.update(overrides)
        return settings_from_mapping(data, env={} if env is None else env)

    return make


@pytest_asyncio.fixture
async def helpdesk_factory(
    settings_factory: Callable[..., Settings],
    clock: FrozenClock,
) -> AsyncIterator[Callable[..., Awaitable[App]]]:
    """Create started helpdesks: ``await helpdesk_factory(plugins={"routing": [...]})``.

    ``extra_plugins=[("name", obj)]`` registers plugin objects directly. Every helpdesk is
    stopped (connections closed) at teardown.
    """
    started: list[App] = []

    async def make(*, extra_plugins: Any = (), use_clock: bool = True, **overrides: Any) -> App:
        app = create_helpdesk(
            settings_factory(**overrides),
            clock=clock if use_clock else None,
            extra_plugins=extra_plugins,
        )
        await app.start()
        started.append(app)
        return app

    yield make
    for app in reversed(started):
        await app.stop()


@pytest_asyncio.fixture
async def helpdesk(helpdesk_factory: Callable[..., Awaitable[App]]) -> App:
    """A started helpdesk with no plugins enabled."""
    return await helpdesk_factory()


class Seed(msgspec.Struct, kw_only=True):
    """People and tokens made by the ``seed`` fixture."""

    team_id: int
    admin: Principal
    agent: Principal
    agent2: Principal
    customer: Principal
    other_customer: Principal
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        """Authorization headers for ``admin``, ``agent``, ``agent2``, ``customer`` or
        ``other_customer``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def seed_helpdesk(app: App) -> Seed:
    """A team (``support``), an admin, two agents in the team, two customers, a token each."""
    team_id = await app.directory.create_team("Support", "support")
    people = {
        "admin": NewUser(email="admin@example.org", name="Ada Admin", role=Role.ADMIN),
        "agent": NewUser(
            email="agent@example.org",
            name="Alex Agent",
            role=Role.AGENT,
            team_ids=[team_id],
        ),
        "agent2": NewUser(
            email="agent2@example.org", name="Sam Second", role=Role.AGENT, team_ids=[team_id]
        ),
        "customer": NewUser(
            email="carol@customer.test",
            name="Carol Customer",
            role=Role.CUSTOMER,
        ),
        "other_customer": NewUser(
            email="dave@customer.test", name="Dave Other", role=Role.CUSTOMER
        ),
    }
    made = {key: await app.auth.create_user(cmd) for key, cmd in people.items()}
    tokens = {key: await app.auth.create_token(p.id, f"test {key}") for key, p in made.items()}
    return Seed(team_id=team_id, tokens=tokens, **made)


@pytest_asyncio.fixture
async def seed(helpdesk: App) -> Seed:
    """``seed_helpdesk`` applied to the ``helpdesk`` fixture."""
    return await seed_helpdesk(helpdesk)


def api_client(app: App) -> httpx.AsyncClient:
    """An httpx client that calls the web app of a started helpdesk in-process."""
    from ticketcore.web import create_app

    web = create_app(app, run_worker=False)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="http://ticketcore.test"
    )


@pytest_asyncio.fixture
async def api(helpdesk: App) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for the ``helpdesk`` fixture's web app (lifespan not run: the
    fixture already started the helpdesk)."""
    async with api_client(helpdesk) as client:
        yield client


@pytest.fixture
def plugin_registrar(helpdesk: App) -> Iterator[Callable[[Any, str], None]]:
    """Register plugin objects into the ``helpdesk`` fixture; unregistered at teardown."""
    names: list[str] = []

    def register(plugin: Any, name: str) -> None:
        helpdesk.pm.register(plugin, name=name)
        names.append(name)

    yield register
    for name in names:
        helpdesk.pm.unregister(name=name)


class InsertFailure:
    """A real database failure on demand: while on, the database itself refuses every INSERT
    into ``table`` (a trigger raising inside the writing transaction), on SQLite and
    PostgreSQL. For testing that a failure mid-write loses and doubles nothing::

        failure = await InsertFailure.install(app.db, "entry")
        await failure.on()
        ...  # the intake's transaction rolls back
        await failure.off()
    """

    def __init__(self, db: Database, table: str) -> None:
        self.db = db
        self.table = table
        self.switch = f"fail_{table}_switch"

    @classmethod
    async def install(cls, db: Database, table: str) -> InsertFailure:
        """Create the switch table and the trigger (initially off)."""
        self = cls(db, table)
        await db.execute_ddl(f"CREATE TABLE {self.switch} (on_ integer)")
        if db.is_sqlite:
            await db.execute_ddl(
                f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
                f"WHEN (SELECT COUNT(*) FROM {self.switch}) > 0 "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        else:
            await db.execute_ddl(
                f"CREATE FUNCTION fail_{table}() RETURNS trigger AS $$ BEGIN "
                f"IF (SELECT COUNT(*) FROM {self.switch}) > 0 THEN "
                "RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            await db.execute_ddl(
                f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION fail_{table}()"
            )
        return self

    async def on(self) -> None:
        """From now on, INSERTs into the table fail."""
        await self.db.fetch(f"INSERT INTO {self.switch} (on_) VALUES (1)")

    async def off(self) -> None:
        """INSERTs work again."""
        await self.db.fetch(f"DELETE FROM {self.switch}")


@contextlib.contextmanager
def traced_statements(db: Database, into: list[str] | None = None) -> Iterator[list[str]]:
    """Collect the SQL text of every statement sent through ``db.fetch`` while inside (into
    ``into`` when given, to gather several stretches), e.g. to check that a path issues no
    more round trips than it should::

        with traced_statements(app.db) as statements:
            await app.tickets.create(...)
        assert not any("GROUP BY" in sql for sql in statements)
    """
    statements: list[str] = [] if into is None else into
    fetch = db.fetch

    async def traced(sql: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        statements.append(sql)
        return await fetch(sql, *args, **kwargs)

    setattr(db, "fetch", traced)  # noqa: B010 (an instance attribute shadows the method)
    try:
        yield statements
    finally:
        delattr(db, "fetch")

"""One Database object per application: the engine, its dialect and write transactions."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from ticketcore.db.sqlite_engine import WRITE_STATEMENT, PersistentSQLiteEngine
from ticketcore.errors import ConfigError

Dialect = Literal["sqlite", "postgres"]


@functools.lru_cache(maxsize=2048)
def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is a unique-constraint violation, on either engine's driver."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    import asyncpg

    return isinstance(exc, asyncpg.UniqueViolationError)


def _compile(sql: str, dialect: Dialect) -> str:
    """Turn ``{}`` placeholders into the driver's: ``?`` (sqlite3) or ``$1..$n`` (asyncpg)."""
    if dialect == "sqlite":
        return sql.replace("{}", "?")
    parts = sql.split("{}")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


def parse_database_url(url: str) -> tuple[Dialect, str]:
    """Return the dialect and the engine target (a file path or a DSN) of a database URL."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError([f"database.url {url!r}: no file path after sqlite:///"])
        return "sqlite", path
    if parsed.scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return "postgres", url.replace("postgresql+asyncpg://", "postgresql://", 1)
    raise ConfigError([f"database.url {url!r}: use sqlite:///FILE or postgresql://..."])


async def _reset_connection(connection: Any) -> None:
    """On release to the pool: only end a transaction left open.

    asyncpg's default reset sends UNLISTEN/RESET ALL/advisory-unlock on every release: one
    more round trip per transaction. We never change session state (locks are
    transaction-scoped), so rolling back a dangling transaction is all that is needed.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class Database:
    """Owns the piccolo engine for one helpdesk and binds the tables to it."""

    def __init__(self, url: str, pool_size: int = 16) -> None:
        self.url = url
        self.dialect, target = parse_database_url(url)
        self.engine: Engine[Any]
        if self.dialect == "sqlite":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.engine = PersistentSQLiteEngine(path=target)
        else:
            self.engine = PostgresEngine(config={"dsn": target})
        self._pool_size = pool_size
        self._started = False

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite engine (single writer)."""
        return self.dialect == "sqlite"

    def bind(self, tables: Sequence[type[Table]]) -> None:
        """Point the given piccolo tables at this database's engine."""
        for table in tables:
            table._meta._db = self.engine

    async def start(self) -> None:
        """Open connections (SQLite) or the connection pool (PostgreSQL)."""
        if self._started:
            return
        if isinstance(self.engine, PersistentSQLiteEngine):
            await self.engine.open()
        else:
            assert isinstance(self.engine, PostgresEngine)
            await self.engine.start_connection_pool(
                min_size=1, max_size=self._pool_size, reset=_reset_connection
            )
        self._started = True

    async def close(self) -> None:
        """Close every connection; safe to call twice."""
        if not self._started:
            return
        self._started = False
        if isinstance(self.engine, PersistentSQLiteEngine):
            await self.engine.close()
        else:
            assert isinstance(self.engine, PostgresEngine)
            await self.engine.close_connection_pool()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A write transaction: all or nothing. On SQLite, one writer at a time."""
        if isinstance(self.engine, PersistentSQLiteEngine):
            if self.engine.current_transaction.get() is not None:
                yield  # nested: joins the outer transaction
                return
            async with self.engine.write_lock, self.engine.transaction():
                yield
        else:
            async with self.engine.transaction():
                yield

    def in_transaction(self) -> bool:
        """Whether the current task is inside a transaction of this database."""
        return self.engine.current_transaction.get() is not None

    async def fetch(self, sql: str, *args: Any, offload: bool = False) -> list[dict[str, Any]]:
        """Run raw SQL with ``{}`` placeholders and return rows as dicts.

        This is the hot path of every service, so it talks to the driver directly (piccolo's
        query objects cost about 0.1 ms each): inside a transaction on the transaction's
        connection, outside on the pool (PostgreSQL) or, on SQLite, inline for short reads
        and on a reader thread with ``offload=True`` for reads that may scan many rows.
        """
        query = _compile(sql, self.dialect)
        current = self.engine.current_transaction.get()
        if isinstance(self.engine, PersistentSQLiteEngine):
            if current is not None:
                return current.connection.execute(query, args).fetchall()
            if not offload and not WRITE_STATEMENT.match(query):
                return self.engine.read_inline(query, args)
            return await self.engine._run_in_new_connection(query, list(args))
        if current is not None:
            rows = await current.connection.fetch(query, *args)
        else:
            assert isinstance(self.engine, PostgresEngine) and self.engine.pool is not None
            rows = await self.engine.pool.fetch(query, *args)
        return [dict(row) for row in rows]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""
        rows = await self.fetch(sql, *args)
        return next(iter(rows[0].values())) if rows else None

    async def execute_ddl(self, ddl: str) -> None:
        """Run one DDL statement."""
        await self.engine.run_ddl(ddl)

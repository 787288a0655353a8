"""A piccolo SQLite engine that keeps its connections open.

The stock engine opens a new connection (and thread) for every query outside a transaction
and for every transaction: about 1.4 ms each on our machines. This subclass keeps a few
reader connections for plain queries and one writer connection for transactions. Writers are
serialised by an asyncio lock and use ``BEGIN IMMEDIATE`` so read-then-write transactions never
fail with "database is locked". It overrides private methods of piccolo's engine, so piccolo's
minor version is pinned in pyproject.toml and tests/test_database.py covers this class.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 30000",
)


class _HeldTransaction(SQLiteTransaction):
    """A transaction on the engine's long-lived writer connection, which it does not close."""

    async def get_connection(self) -> aiosqlite.Connection:
        engine = self.engine
        assert isinstance(engine, PersistentSQLiteEngine)
        return await engine.writer()

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        finally:
            self.engine.current_transaction.reset(self.context)
        return exception is None


class PersistentSQLiteEngine(SQLiteEngine):
    """SQLite engine with pooled long-lived connections and serialised write transactions."""

    def __init__(self, path: str, readers: int = 2, **kwargs: Any) -> None:
        super().__init__(path=path, timeout=30, check_same_thread=False, **kwargs)
        self._reader_count = readers
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: itertools.cycle[aiosqlite.Connection] | None = None
        self._writer: aiosqlite.Connection | None = None
        self._open_lock = asyncio.Lock()
        self.write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(**self.connection_kwargs)
        connection.row_factory = dict_factory  # type: ignore[assignment]
        for pragma in _PRAGMAS:
            await connection.execute(pragma)
        return connection

    async def open(self) -> None:
        """Open the writer and reader connections (idempotent)."""
        async with self._open_lock:
            if self._writer is not None:
                return
            self._writer = await self._connect()
            self._readers = [await self._connect() for _ in range(self._reader_count)]
            self._reader_cycle = itertools.cycle(self._readers)

    async def close(self) -> None:
        """Close every connection: aiosqlite threads are not daemons and block exit otherwise."""
        connections = [*self._readers, *([self._writer] if self._writer else [])]
        self._readers, self._writer, self._reader_cycle = [], None, None
        for connection in connections:
            await connection.close()

    async def writer(self) -> aiosqlite.Connection:
        """The connection that every write transaction uses."""
        if self._writer is None:
            await self.open()
        assert self._writer is not None
        return self._writer

    async def _reader(self) -> aiosqlite.Connection:
        if self._reader_cycle is None:
            await self.open()
        assert self._reader_cycle is not None
        return next(self._reader_cycle)

    async def get_connection(self) -> aiosqlite.Connection:  # used by batch()
        return await self._reader()

    async def _run_in_new_connection(
        self,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        # Not in a transaction: run on a reader. A lone write statement here commits itself
        # (autocommit); services write inside transactions.
        connection = await self._reader()
        async with connection.execute(query, args or []) as cursor:
            return await cursor.fetchall()

    async def _run_in_existing_connection(
        self,
        connection: Any,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        # The stock engine re-sends "PRAGMA foreign_keys" before every statement: set once.
        async with connection.execute(query, args or []) as cursor:
            return await cursor.fetchall()

    def transaction(  # type: ignore[override]
        self,
        transaction_type: TransactionType = TransactionType.immediate,
        allow_nested: bool = True,
    ) -> SQLiteTransaction:
        """A transaction on the writer connection; callers hold ``write_lock`` around it."""
        return _HeldTransaction(
            engine=self, transaction_type=transaction_type, allow_nested=allow_nested
        )

"""A piccolo SQLite engine built for one server process: long-lived connections, one writer.

The stock engine opens a new connection (and thread) for every query outside a transaction
and for every transaction: about 1.4 ms each on our machines, and every statement inside a
transaction is a round trip to aiosqlite's thread. This engine instead keeps:

- a few aiosqlite *reader* connections (each on its own thread) for queries outside a
  transaction, so a slow read never blocks the event loop;
- one plain ``sqlite3`` *writer* connection used synchronously on the event loop's thread.
  A write statement in WAL mode takes tens of microseconds, far less than a thread round
  trip, so running it inline is both faster and simpler. Write transactions are serialised
  by an asyncio lock and start with ``BEGIN IMMEDIATE``; if another process holds the write
  lock, BEGIN is retried asynchronously (the loop is never blocked waiting for it).

It overrides private methods of piccolo's engine, so piccolo's minor version is pinned in
pyproject.toml, and tests/test_database.py covers this class on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory

WRITE_STATEMENT = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|VACUUM|ANALYZE)\b", re.I
)
_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    # Checkpoints run from a background task on a reader thread (see _checkpoint_loop):
    # an automatic checkpoint at commit fsyncs on the event loop, and while readers pin
    # old pages it cannot finish, so it was retried, with its fsync, on every commit.
    "PRAGMA wal_autocheckpoint = 0",
)
_CHECKPOINT_EVERY_S = 1.0
_READER_BUSY_MS = 30_000


def _timestamptz_out(value: bytes) -> datetime.datetime:
    """TIMESTAMPTZ text (stored in UTC by piccolo's adapter) to an aware datetime."""
    parsed = datetime.datetime.fromisoformat(value.decode())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


# piccolo registers Python-level converters for every INTEGER and TIMESTAMPTZ value it
# reads (a wrapper, a decode and a call per value: a third of a ticket list's time). These
# give the same values with less work; sqlite3 converters are process-wide, so piccolo's own
# queries get them too. int() accepts the bytes sqlite3 passes.
sqlite3.register_converter("INTEGER", int)
sqlite3.register_converter("TIMESTAMPTZ", _timestamptz_out)
_BEGIN_TIMEOUT_S = 30.0


class _HeldTransaction(SQLiteTransaction):
    """A transaction on the engine's synchronous writer connection (never closed here)."""

    async def get_connection(self) -> sqlite3.Connection:
        engine = self.engine
        assert isinstance(engine, PersistentSQLiteEngine)
        return engine.writer()

    async def begin(self) -> None:
        engine = self.engine
        assert isinstance(engine, PersistentSQLiteEngine)
        await engine.begin(self.connection, self.transaction_type.value)

    async def commit(self) -> None:
        self.connection.execute("COMMIT")
        self._committed = True

    async def rollback(self) -> None:
        self.connection.execute("ROLLBACK")
        self._rolled_back = True

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
    """SQLite engine with pooled reader threads and a synchronous, serialised writer."""

    def __init__(self, path: str, readers: int = 2, **kwargs: Any) -> None:
        super().__init__(path=path, timeout=30, check_same_thread=False, **kwargs)
        self._reader_count = readers
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: itertools.cycle[aiosqlite.Connection] | None = None
        self._writer: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._checkpointer: asyncio.Task[None] | None = None
        self.write_lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the writer and reader connections (idempotent)."""
        async with self._open_lock:
            if self._writer is not None:
                return
            writer = sqlite3.connect(**{**self.connection_kwargs, "timeout": 0})
            writer.row_factory = dict_factory
            for pragma in _PRAGMAS:
                writer.execute(pragma)
            self._writer = writer
            inline = sqlite3.connect(**{**self.connection_kwargs, "timeout": 1})
            inline.row_factory = dict_factory
            inline.execute("PRAGMA foreign_keys = ON")
            inline.execute("PRAGMA wal_autocheckpoint = 0")
            self._inline = inline
            for _ in range(self._reader_count):
                pending = aiosqlite.connect(**self.connection_kwargs)
                # aiosqlite threads are not daemons: after a crash that skipped close(), the
                # process would hang at exit instead of ending.
                pending._thread.daemon = True
                reader = await pending
                reader.row_factory = dict_factory  # type: ignore[assignment]
                await reader.execute("PRAGMA foreign_keys = ON")
                await reader.execute(f"PRAGMA busy_timeout = {_READER_BUSY_MS}")
                await reader.execute("PRAGMA wal_autocheckpoint = 0")
                self._readers.append(reader)
            self._reader_cycle = itertools.cycle(self._readers)
            self._checkpointer = asyncio.create_task(
                self._checkpoint_loop(self._readers[0]), name="sqlite-checkpoint"
            )

    async def _checkpoint_loop(self, connection: aiosqlite.Connection) -> None:
        """Move the WAL into the database file now and then, off the event loop."""
        while True:
            await asyncio.sleep(_CHECKPOINT_EVERY_S)
            try:
                await connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # e.g. busy: the next round will do it
                continue

    async def close(self) -> None:
        """Close every connection: aiosqlite threads are not daemons and block exit otherwise."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        readers, writer, inline = self._readers, self._writer, self._inline
        self._readers, self._writer, self._reader_cycle, self._inline = [], None, None, None
        if inline is not None:
            inline.close()
        for reader in readers:
            await reader.close()
        if writer is not None:
            with contextlib.suppress(sqlite3.Error):
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            writer.close()

    def writer(self) -> sqlite3.Connection:
        """The connection every write goes through (opened by ``open``)."""
        if self._writer is None:
            raise RuntimeError("the SQLite engine is not open: call Database.start() first")
        return self._writer

    async def begin(self, connection: sqlite3.Connection, kind: str) -> None:
        """``BEGIN <kind>``, retried without blocking the loop while another process writes."""
        deadline = time.monotonic() + _BEGIN_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                connection.execute(f"BEGIN {kind}")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def read_inline(self, query: str, args: Sequence[Any]) -> list[Any]:
        """Run a short read on the event loop's thread and return every row.

        An indexed read with a LIMIT takes well under a millisecond: less than the round
        trip to a reader thread, and without the GIL hand-offs. Reads that may scan
        (free-text search, reports) go to the reader threads instead (``offload``).
        """
        if self._inline is None:
            raise RuntimeError("the SQLite engine is not open: call Database.start() first")
        return self._inline.execute(query, args).fetchall()

    async def _reader(self) -> aiosqlite.Connection:
        if self._reader_cycle is None:
            await self.open()
        assert self._reader_cycle is not None
        return next(self._reader_cycle)

    async def get_connection(self) -> aiosqlite.Connection:  # used by piccolo's batch()
        return await self._reader()

    async def _run_in_new_connection(
        self,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        # Not in a transaction. A lone write statement becomes a one-statement write
        # transaction on the writer; reads go to a reader thread.
        if WRITE_STATEMENT.match(query):
            async with self.write_lock:
                writer = self.writer()
                await self.begin(writer, "IMMEDIATE")
                try:
                    rows = writer.execute(query, args or []).fetchall()
                except BaseException:
                    writer.execute("ROLLBACK")
                    raise
                writer.execute("COMMIT")
                return rows
        # One hop to the reader thread that executes, fetches and closes the cursor. With
        # execute and fetch as two hops, concurrent coroutines interleaved statements on a
        # shared reader, and an unfinished statement kept its connection's read snapshot
        # open: a read right after a commit could miss it (seen as 404 on a reply just saved).
        connection = await self._reader()
        return await connection.execute_fetchall(query, args or [])

    async def _run_in_existing_connection(
        self,
        connection: Any,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        # Inside a transaction: the synchronous writer (the stock engine also re-sent
        # "PRAGMA foreign_keys" before every statement; it is set once here).
        return connection.execute(query, args or []).fetchall()

    async def run_ddl(self, ddl: str, in_pool: bool = False) -> Any:
        """DDL runs on the writer like any other write."""
        current = self.current_transaction.get()
        if current is not None:
            return current.connection.execute(ddl).fetchall()
        return await self._run_in_new_connection(ddl)

    def transaction(
        self,
        transaction_type: TransactionType = TransactionType.immediate,
        allow_nested: bool = True,
    ) -> SQLiteTransaction:
        """A transaction on the writer; callers hold ``write_lock`` around it."""
        return _HeldTransaction(
            engine=self, transaction_type=transaction_type, allow_nested=allow_nested
        )

"""Bulk preload of contacts and tickets straight into the database (not through the API).

SQLite: ``sqlite3`` executemany, one transaction per batch, server stopped. PostgreSQL:
asyncpg ``copy_records_to_table`` per batch. Both end with ANALYZE. Tickets get varied
statuses, priorities, teams and assignees, and ``created_at`` grows with the id, so a
smaller preload can be topped up to a larger one.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from apibench.server import Target

BATCH = 50_000
CONTACTS = 1_000
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)

STATUS_WEIGHTS = {
    "new": 30,
    "open": 30,
    "pending_customer": 7,
    "on_hold": 3,
    "resolved": 20,
    "closed": 10,
}
PRIORITY_WEIGHTS = {"low": 20, "normal": 50, "high": 20, "critical": 10}
CATEGORIES = (None, None, "billing", "technical", "account", "shipping")
CHANNELS = ("email", "email", "email", "web", "api")

TICKET_COLUMNS = (
    "key",
    "subject",
    "description",
    "status",
    "priority",
    "category",
    "channel",
    "requester",
    "team",
    "assignee",
    "custom_fields",
    "tags",
    "version",
    "created_at",
    "updated_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
)
CONTACT_COLUMNS = ("name", "email", "phone", "organisation", "vip", "created_at")


def _ticket_row(
    rng: random.Random, number: int, contacts: list[int], target: Target
) -> tuple[Any, ...]:
    """One ticket (datetimes as aware datetime objects)."""
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    priority = rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0]
    created = EPOCH + STEP * number
    responded = created + timedelta(minutes=rng.randint(5, 600)) if status != "new" else None
    resolved = (
        created + timedelta(hours=rng.randint(1, 72)) if status in ("resolved", "closed") else None
    )
    closed = resolved + timedelta(days=3) if status == "closed" and resolved else None
    team = rng.choice(target.team_ids) if rng.random() < 0.9 else None
    assignee = target.user_id if status != "new" and rng.random() < 0.7 else None
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        f"Preloaded ticket #{number}: cannot access invoice portal",
        "Hello, I cannot open the invoice portal since this morning. Please help. " * 3,
        status,
        priority,
        rng.choice(CATEGORIES),
        rng.choice(CHANNELS),
        rng.choice(contacts),
        team,
        assignee,
        "{}",
        "[]",
        1,
        created,
        closed or resolved or responded or created,
        responded,
        resolved,
        closed,
    )


def ticket_batches(
    target: Target, contacts: list[int], start: int, end: int, seed: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows numbered ``start`` to ``end - 1``, in batches of BATCH."""
    rng = random.Random(seed * 1_000_003 + start)
    for low in range(start, end, BATCH):
        yield [_ticket_row(rng, n, contacts, target) for n in range(low, min(low + BATCH, end))]


def _contact_rows() -> list[tuple[Any, ...]]:
    return [
        (f"Preload Customer {k}", f"preload{k}@example.com", None, None, k % 50 == 0, EPOCH)
        for k in range(CONTACTS)
    ]


def _sqlite_value(value: Any) -> Any:
    """How piccolo stores a value on SQLite: UTC datetimes as ``str()``, booleans as 0/1."""
    if isinstance(value, datetime):
        return str(value.astimezone(UTC))
    if isinstance(value, bool):
        return int(value)
    return value


def _sqlite_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(_sqlite_value(v) for v in row) for row in rows]


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"


def _sqlite_contacts(conn: sqlite3.Connection) -> list[int]:
    existing = [r[0] for r in conn.execute("SELECT id FROM contact WHERE email LIKE 'preload%'")]
    if existing:
        return existing
    with conn:
        conn.executemany(_insert_sql("contact", CONTACT_COLUMNS), _sqlite_rows(_contact_rows()))
    return [r[0] for r in conn.execute("SELECT id FROM contact WHERE email LIKE 'preload%'")]


def preload_sqlite(target: Target, total: int, seed: int) -> int:
    """Top the ticket table up to ``total`` rows (server stopped); return rows added."""
    conn = sqlite3.connect(target.sqlite_path, timeout=60)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        contacts = _sqlite_contacts(conn)
        start = conn.execute("SELECT count(*) FROM ticket").fetchone()[0]
        sql = _insert_sql("ticket", TICKET_COLUMNS)
        for batch in ticket_batches(target, contacts, start, total, seed):
            with conn:  # one transaction per batch
                conn.executemany(sql, _sqlite_rows(batch))
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return max(total - start, 0)


async def _pg_contacts(conn: asyncpg.Connection, schema: str) -> list[int]:
    query = f"SELECT id FROM {schema}.contact WHERE email LIKE 'preload%'"
    existing = [r["id"] for r in await conn.fetch(query)]
    if existing:
        return existing
    await conn.copy_records_to_table(
        "contact", records=_contact_rows(), columns=list(CONTACT_COLUMNS), schema_name=schema
    )
    return [r["id"] for r in await conn.fetch(query)]


async def preload_postgres(target: Target, total: int, seed: int) -> int:
    """Top the ticket table up to ``total`` rows with COPY; return rows added."""
    assert target.pg_dsn and target.schema
    schema = target.schema
    conn = await asyncpg.connect(target.pg_dsn, timeout=10)
    try:
        contacts = await _pg_contacts(conn, schema)
        start = await conn.fetchval(f"SELECT count(*) FROM {schema}.ticket")
        for batch in ticket_batches(target, contacts, start, total, seed):
            await conn.copy_records_to_table(
                "ticket", records=batch, columns=list(TICKET_COLUMNS), schema_name=schema
            )
        await conn.execute(f"ANALYZE {schema}.ticket, {schema}.contact")
    finally:
        await conn.close()
    return max(total - start, 0)


async def preload(target: Target, total: int, seed: int) -> int:
    """Top the ticket table of ``target`` up to ``total`` rows; return rows added."""
    if target.engine == "sqlite":
        return preload_sqlite(target, total, seed)
    return await preload_postgres(target, total, seed)


async def ticket_id_range(target: Target) -> tuple[int, int]:
    """The smallest and largest ticket id."""
    if target.engine == "sqlite":
        conn = sqlite3.connect(target.sqlite_path, timeout=60)
        try:
            low, high = conn.execute("SELECT min(id), max(id) FROM ticket").fetchone()
        finally:
            conn.close()
        return int(low), int(high)
    assert target.pg_dsn and target.schema
    conn2 = await asyncpg.connect(target.pg_dsn, timeout=10)
    try:
        row = await conn2.fetchrow(
            f"SELECT min(id) AS lo, max(id) AS hi FROM {target.schema}.ticket"
        )
    finally:
        await conn2.close()
    return int(row["lo"]), int(row["hi"])

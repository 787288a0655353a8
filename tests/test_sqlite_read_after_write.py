"""Reads outside a transaction see every commit that finished before they started, even with
many concurrent readers sharing the engine's reader connections (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from ticketcore.app import App


async def test_read_after_commit_under_concurrent_reads(helpdesk: App) -> None:
    db = helpdesk.db
    await db.execute_ddl("CREATE TABLE probe (id INTEGER PRIMARY KEY, value INTEGER)")
    stop = asyncio.Event()

    async def background_reader() -> None:
        while not stop.is_set():
            await db.fetch("SELECT COUNT(*) AS n FROM probe")

    readers = [asyncio.create_task(background_reader()) for _ in range(12)]
    missed = 0
    try:
        for value in range(150):
            async with db.transaction():
                await db.fetch("INSERT INTO probe (id, value) VALUES ({}, {})", value, value)
            if not await db.fetch("SELECT id FROM probe WHERE id = {}", value):
                missed += 1
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert missed == 0

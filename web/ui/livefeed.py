"""Live updates for the pages, across any number of server processes.

The database is the bus: each process runs one poller (only while someone listens) that
reads new rows of ``ticket_event`` by id and hands them to the pages subscribed in this
process. Works the same on SQLite and PostgreSQL.

On PostgreSQL, ids come from a sequence when a row is inserted but become visible at
commit, so a transaction can commit a lower id after a higher one was seen. The poller
therefore re-reads a window of recent ids (``LOOKBACK``) and skips those already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketcore.db.database import Database

log = logging.getLogger("ticketcore.web.live")

LOOKBACK = 200  # ids re-read on PostgreSQL for late commits
BATCH = 500


@dataclass(frozen=True)
class LiveEvent:
    """A change to a ticket, as the pages need it."""

    id: int
    ticket_id: int
    kind: str
    requester_id: int


class EventFeed:
    """Polls ``ticket_event`` and fans new events out to subscribers of this process."""

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._queues: set[asyncio.Queue[LiveEvent]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_id: int | None = None
        self._sent: set[int] = set()

    @property
    def _lookback(self) -> int:
        return 0 if self.db.is_sqlite else LOOKBACK

    async def latest_id(self) -> int:
        """The id of the newest event now (pages pass it back as ``/live?after=``)."""
        return int(await self.db.fetchval("SELECT MAX(id) FROM ticket_event") or 0)

    async def since(self, after: int, limit: int = BATCH) -> list[LiveEvent]:
        """Events with an id above ``after``, oldest first (one query)."""
        rows = await self.db.fetch(
            "SELECT e.id, e.ticket, e.kind, t.requester FROM ticket_event e "
            "JOIN ticket t ON t.id = e.ticket WHERE e.id > {} ORDER BY e.id LIMIT {}",
            after,
            limit,
        )
        return [
            LiveEvent(
                id=int(r["id"]),
                ticket_id=int(r["ticket"]),
                kind=str(r["kind"]),
                requester_id=int(r["requester"]),
            )
            for r in rows
        ]

    async def _start(self) -> None:
        """Begin after the newest event now: what already happened is not news (the
        lookback window's visible events count as sent)."""
        last = await self.latest_id()
        if self._lookback:
            rows = await self.db.fetch(
                "SELECT id FROM ticket_event WHERE id > {}", last - self._lookback
            )
            self._sent = {int(r["id"]) for r in rows}
        self._last_id = last

    async def poll_once(self) -> list[LiveEvent]:
        """Read events newer than the last seen (one query) and return the unsent ones."""
        if self._last_id is None:
            await self._start()
            return []
        lookback = self._lookback
        read = await self.since(self._last_id - lookback)
        fresh = [e for e in read if e.id not in self._sent]
        if fresh:
            self._last_id = max(self._last_id, fresh[-1].id)
            self._sent.update(e.id for e in fresh)
            floor = self._last_id - lookback
            self._sent = {i for i in self._sent if i > floor}
        return fresh

    async def _run(self) -> None:
        while self._queues:
            try:
                for event in await self.poll_once():
                    for queue in list(self._queues):
                        with contextlib.suppress(asyncio.QueueFull):  # a stalled page
                            queue.put_nowait(event)
            except Exception:  # a failed poll must not end the feed: retry next time
                log.exception("live feed poll failed")
            await asyncio.sleep(self.interval)
        # Nobody listens: the next subscriber starts from "now" again (pages fetch what
        # they missed themselves with ``since``).
        self._task = None
        self._last_id = None
        self._sent = set()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        """A queue receiving every new event while the context is open."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=1000)
        if self._last_id is None:
            await self._start()
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ticketcore-live-feed")
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def close(self) -> None:
        """Stop the poller (at shutdown)."""
        self._queues.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

"""Durable jobs with leases: the outbox and every timer run from the ``job`` table.

A job is written in the transaction of the change that causes it, so a crash can neither
lose it nor run it for a change that was rolled back. Workers claim due jobs with one
``UPDATE ... RETURNING`` statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so any number
of worker processes share the table without running a job twice at the same time. A job
whose worker died is claimed again once its lease expires.

Bookkeeping is kept to few round trips (on PostgreSQL each statement is a round trip to the
server, and a transaction adds ``BEGIN`` and ``COMMIT``): a claim is one autocommitted
statement (no transaction around it, no read before it), and each job's outcome is one
autocommitted statement right after it ran. Outcomes are recorded job by job, not once per
batch, so a worker that dies leaves at most the job it was running to be run again once its
lease expires (at-least-once delivery: downstream idempotency keys, and the automation's
unique (rule, event) record, keep that repeat from doubling an effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.jobs")


class JobRecord(msgspec.Struct, kw_only=True):
    """A claimed job. Handlers may update ``payload``; it is saved if they fail."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


JobHandler = Callable[["App", JobRecord], Awaitable[None]]
#: Other due work the worker polls besides the job table (e.g. SLA timers on tickets):
#: run one batch, return how many items it handled.
Poller = Callable[[], Awaitable[int]]


class JobQueue:
    """Enqueue jobs inside transactions; run a worker that claims and executes them."""

    def __init__(
        self,
        app: App,
        handlers: dict[str, JobHandler],
        lease_seconds: float = 60,
        batch_size: int = 20,
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._enqueued = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.pollers: list[Poller] = []

    def add_poller(self, poller: Poller) -> None:
        """Have the worker (``work``, ``drain``) also run ``poller`` on every round."""
        self.pollers.append(poller)

    async def _poll(self) -> int:
        ran = 0
        for poller in self.pollers:
            ran += await poller()
        return ran

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        run_at: datetime | None = None,
        key: str | None = None,
    ) -> None:
        """Add a job; with ``key``, a job with the same key already queued wins (idempotent).

        Call inside the transaction of the change that causes the job.
        """
        await self.enqueue_many(kind, [(payload, key)], run_at=run_at)

    async def enqueue_many(
        self,
        kind: str,
        jobs: list[tuple[dict[str, Any], str | None]],
        *,
        run_at: datetime | None = None,
    ) -> None:
        """Add several jobs of one kind in one statement: ``[(payload, key), ...]``."""
        if kind not in self.handlers:
            raise ValueError(f"no handler registered for job kind {kind!r}")
        if not jobs:
            return
        self._enqueued += len(jobs)
        now = self.app.clock.now()
        values = ", ".join(["({}, {}, {}, 'pending', {}, 0, 8, {})"] * len(jobs))
        args: list[Any] = []
        for payload, key in jobs:
            args += [kind, msgspec.json.encode(payload).decode(), key, run_at or now, now]
        await self.app.db.fetch(
            "INSERT INTO job (kind, payload, idempotency_key, status, run_at, attempts, "
            f"max_attempts, created_at) VALUES {values} ON CONFLICT (idempotency_key) DO NOTHING",
            *args,
        )

    def wake(self) -> None:
        """Tell the local worker that new jobs are due (after a commit); a no-op when this
        process enqueued nothing since the last wake, so plain writes cost the worker nothing."""
        if self._enqueued:
            self._enqueued = 0
            self._wake.set()

    async def any_due(self) -> bool:
        """Whether a job is due or has an expired lease: a cheap read before claiming."""
        now = self.app.clock.now()
        rows = await self.app.db.fetch(
            "SELECT id FROM job WHERE (status = 'pending' AND run_at <= {}) "
            "OR (status = 'running' AND locked_until < {}) LIMIT 1",
            now,
            now,
        )
        return bool(rows)

    async def _write(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run one bookkeeping statement on its own.

        On PostgreSQL a single statement is atomic by itself: sent outside a transaction it
        autocommits in one round trip, where ``BEGIN``/statement/``COMMIT`` took three. On
        SQLite every write must go through the one writer (its lock and transaction).
        Inside the caller's transaction it simply joins it.
        """
        db = self.app.db
        if db.is_sqlite and not db.in_transaction():
            async with db.transaction():
                return await db.fetch(sql, *args)
        return await db.fetch(sql, *args)

    async def claim(self, limit: int | None = None) -> list[JobRecord]:
        """Claim up to ``limit`` due jobs for this worker, with a lease."""
        now = self.app.clock.now()
        db = self.app.db
        skip_locked = "" if db.is_sqlite else " FOR UPDATE SKIP LOCKED"
        sql = (
            "UPDATE job SET status = 'running', locked_by = {}, locked_until = {}, "
            "attempts = attempts + 1 WHERE id IN (SELECT id FROM job WHERE "
            "(status = 'pending' AND run_at <= {}) OR (status = 'running' AND locked_until < {})"
            " ORDER BY run_at, id LIMIT {}" + skip_locked + ") "
            "RETURNING id, kind, payload, attempts, max_attempts"
        )
        args = (self.worker_id, now + self.lease, now, now, limit or self.batch_size)
        # On SQLite look first: a claim is a write, and a write takes the one writer even
        # when nothing is due. On PostgreSQL the claim finding nothing is as cheap as the
        # look (no row locked, nothing to commit), so the look would only add a round trip.
        if db.is_sqlite and not db.in_transaction() and not await self.any_due():
            return []
        rows = await self._write(sql, *args)
        # RETURNING gives no order: run them in the order they were queued (jobs due at the
        # same instant, e.g. "created" then "status changed" mails, must not swap places).
        return [
            JobRecord(
                id=r["id"],
                kind=r["kind"],
                payload=_load(r["payload"]),
                attempts=r["attempts"],
                max_attempts=r["max_attempts"],
            )
            for r in sorted(rows, key=lambda r: r["id"])
        ]

    async def _complete(self, jobs: list[JobRecord]) -> None:
        """Mark jobs that succeeded done, all in one statement (one commit).

        ``locked_by`` guards each row: a job whose lease expired and that another worker
        claimed meanwhile keeps the outcome its new owner records.
        """
        if not jobs:
            return
        marks = ", ".join(["{}"] * len(jobs))
        cases = " ".join(["WHEN {} THEN {}"] * len(jobs))
        args: list[Any] = []
        for job in jobs:  # handlers may have updated the payload (e.g. plugins done)
            args += [job.id, msgspec.json.encode(job.payload).decode()]
        await self._write(
            "UPDATE job SET status = 'done', finished_at = {}, locked_until = NULL, "
            f"last_error = NULL, payload = CASE id {cases} ELSE payload END "
            f"WHERE id IN ({marks}) AND locked_by = {{}}",
            self.app.clock.now(),
            *args,
            *[job.id for job in jobs],
            self.worker_id,
        )

    async def _finish(self, job: JobRecord, error: BaseException | None) -> None:
        """Record one job's outcome: done, retried after a backoff, or dead."""
        if error is None:
            await self._complete([job])
            return
        now = self.app.clock.now()
        payload = msgspec.json.encode(job.payload).decode()
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        if job.attempts >= job.max_attempts:
            await self._write(
                "UPDATE job SET status = 'dead', finished_at = {}, locked_until = NULL, "
                "payload = {}, last_error = {} WHERE id = {} AND locked_by = {}",
                now,
                payload,
                text,
                job.id,
                self.worker_id,
            )
            log.error(
                "job %s (%s) gave up after %s attempts: %s", job.id, job.kind, job.attempts, text
            )
            return
        backoff = timedelta(seconds=min(2**job.attempts, 3600))
        await self._write(
            "UPDATE job SET status = 'pending', run_at = {}, locked_until = NULL, "
            "locked_by = NULL, payload = {}, last_error = {} WHERE id = {} AND locked_by = {}",
            now + backoff,
            payload,
            text,
            job.id,
            self.worker_id,
        )

    async def _execute(self, job: JobRecord) -> BaseException | None:
        """Run a claimed job's handler; the error it raised, or None."""
        handler = self.handlers.get(job.kind)
        if handler is None:
            return LookupError(f"no handler for job kind {job.kind!r} (plugin disabled?)")
        try:
            await handler(self.app, job)
        except Exception as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
            return exc
        return None

    async def run_job(self, job: JobRecord) -> bool:
        """Run one claimed job and record the outcome at once; True if it succeeded."""
        error = await self._execute(job)
        await self._finish(job, error)
        return error is None

    async def run_batch(self, jobs: list[JobRecord]) -> int:
        """Run claimed jobs in order, recording each outcome as soon as it is known (a crash
        then repeats at most the job in flight); return how many succeeded."""
        succeeded = 0
        for job in jobs:
            succeeded += await self.run_job(job)
        return succeeded

    async def run_due(self, limit: int | None = None) -> int:
        """Claim and run the jobs due now, one batch; return how many ran. For tests and CLI."""
        jobs = await self.claim(limit)
        await self.run_batch(jobs)
        return len(jobs)

    async def drain(self, max_rounds: int = 100) -> int:
        """Run due jobs until none are left (or ``max_rounds`` batches); return the count."""
        total = 0
        for _ in range(max_rounds):
            ran = await self._poll() + await self.run_due()
            if not ran:
                break
            total += ran
        return total

    async def work(self, poll_interval: float = 1.0) -> None:
        """Run forever: claim and execute due jobs, sleeping until woken or polled."""
        while not self._stopping:
            # Clear the wake-up flag *before* looking for jobs, never after: a wake() or a
            # stop_worker() arriving while run_due() awaits the database must not be erased,
            # or the worker sleeps a whole poll interval (stop_worker hung that long).
            self._wake.clear()
            try:
                ran = await self._poll() + await self.run_due()
            except Exception:
                log.exception("worker loop error; retrying")
                ran = 0
            if ran or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval)

    def start_worker(self, poll_interval: float = 1.0) -> None:
        """Run the worker as a background task of the current event loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.work(poll_interval), name="ticketcore-worker")

    async def stop_worker(self) -> None:
        """Stop the background worker after the job it is running."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(task, timeout=30)
        except TimeoutError:
            task.cancel()

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        rows = await self.app.db.fetch("SELECT status, COUNT(*) AS n FROM job GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


def _load(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return msgspec.json.decode(value) if value else {}


async def _deliver_hook(app: App, job: JobRecord, hook: str, kwargs: dict[str, Any]) -> None:
    """Call every implementation of an isolated hook not yet done for this job.

    The names of plugins that succeeded are kept in the payload, so a retry calls only
    the ones that failed: one failing notifier never repeats or blocks the others.
    """
    done = set(job.payload.get("done", []))
    todo = set(app.hooks.implementers(hook)) - done
    if not todo:
        return
    outcomes = await app.hooks.broadcast(hook, only=todo, **kwargs)
    done.update(o.plugin for o in outcomes if o.ok)
    job.payload["done"] = sorted(done)
    failed = [f"{o.plugin}: {o.error}" for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError("; ".join(failed))


async def _dispatch_event(app: App, job: JobRecord) -> None:
    event = await app.tickets.event(job.payload["event_id"])
    ticket = await app.tickets.snapshot(event.ticket_id)
    await _deliver_hook(app, job, "ticket_event", {"event": event, "ticket": ticket})


async def _notify(app: App, job: JobRecord) -> None:
    from ticketcore.domain.models import Notification

    notification = msgspec.convert(job.payload["notification"], Notification)
    await _deliver_hook(app, job, "notify", {"notification": notification})


async def _deliver_reply(app: App, job: JobRecord) -> None:
    entry = await app.tickets.entry(job.payload["entry_id"])
    ticket = await app.tickets.snapshot(entry.ticket_id)
    sent = await app.hooks.first_result(
        "deliver_reply", ticket=ticket, reply=entry, channel=ticket.channel
    )
    job.payload["delivered_by_channel"] = bool(sent)


def core_job_handlers() -> dict[str, JobHandler]:
    """The job kinds the core itself needs: the outbox of hooks after commit."""
    return {"ticket_event": _dispatch_event, "notify": _notify, "deliver_reply": _deliver_reply}

"""The durable job queue and the outbox of ``ticket_event`` hooks, on both engines.

Jobs are written in the transaction of the change (a rollback leaves none), delivered once
per plugin, retried after a backoff without repeating the plugins that succeeded, given up
as ``dead`` after ``max_attempts``, reclaimed when the worker holding them died, and never
handed to two claimers at once (also across two helpdesk instances). Each job of a claimed
batch records its outcome in one statement as soon as it ran, a failure never stopping the
others; a worker killed after the work but before recording it has the job run again, with
the automation's effect still once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from ticketcore import Entry, Notification, Ticket, TicketEvent, hookimpl
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewEntry, NewTicket, RequesterInput, TicketPatch
from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Principal
from ticketcore.jobs import JobQueue
from ticketcore.services.rows import load_json

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


class Recorder:
    """A ``ticket_event`` plugin that remembers every event it was given (async)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, int]] = []

    @hookimpl
    async def ticket_event(self, event: TicketEvent, ticket: Ticket) -> None:
        """Record (event id, kind, ticket id)."""
        self.seen.append((event.id, event.kind, ticket.id))


class Flaky:
    """A ``ticket_event`` plugin that fails its first ``failures`` calls (sync)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    @hookimpl
    def ticket_event(self, event: TicketEvent, ticket: Ticket) -> None:
        """Fail while failures remain, then succeed."""
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"smtp relay down (call {self.calls})")


def new_ticket(subject: str = "Outbox test") -> NewTicket:
    """A minimal ticket command."""
    return NewTicket(subject=subject, requester=RequesterInput(email="ann@example.org"))


async def jobs(app: App, kind: str | None = None) -> list[dict[str, Any]]:
    """Every job row, oldest first (optionally of one kind)."""
    rows = await app.db.fetch("SELECT * FROM job ORDER BY id")
    return [r for r in rows if kind is None or r["kind"] == kind]


async def event_ids(app: App, ticket_id: int) -> list[int]:
    """Ids of a ticket's history events."""
    rows = await app.db.fetch(
        "SELECT id FROM ticket_event WHERE ticket = {} ORDER BY id", ticket_id
    )
    return [r["id"] for r in rows]


async def test_create_enqueues_one_job_per_event_and_drain_delivers_once(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    recorder = Recorder()
    app = await helpdesk_factory(extra_plugins=[("recorder", recorder)])
    assert await jobs(app) == []
    ticket = await app.tickets.create(SYSTEM, new_ticket())
    events = await event_ids(app, ticket.id)
    queued = await jobs(app)
    assert len(queued) == len(events) == 1
    assert [r["status"] for r in queued] == ["pending"]
    assert [r["idempotency_key"] for r in queued] == [f"ticket_event:{events[0]}"]
    assert recorder.seen == []  # nothing is delivered before the worker runs

    await app.tickets.update(SYSTEM, ticket.id, TicketPatch(priority=Priority.HIGH), version=1)
    events = await event_ids(app, ticket.id)
    assert len(await jobs(app)) == 2

    assert await app.jobs.drain() == 2
    assert sorted(e for e, _, _ in recorder.seen) == events
    assert [kind for _, kind, _ in recorder.seen] == ["created", "updated"]
    assert {t for _, _, t in recorder.seen} == {ticket.id}
    assert await app.jobs.drain() == 0
    assert len(recorder.seen) == 2
    assert await app.jobs.counts() == {"done": 2}
    done = await jobs(app)
    assert all(r["finished_at"] is not None and r["last_error"] is None for r in done)


async def test_no_job_without_a_ticket_event_plugin(helpdesk: App) -> None:
    await helpdesk.tickets.create(SYSTEM, new_ticket())
    assert await jobs(helpdesk) == []


async def test_jobs_are_invisible_until_the_change_commits(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(extra_plugins=[("recorder", Recorder())])
    observer = await helpdesk_factory()  # its own connections, like another process
    async with app.db.transaction():
        ticket = await app.tickets.create(SYSTEM, new_ticket())
        assert len(await app.db.fetch("SELECT id FROM job")) == 1  # this transaction sees it
        assert await observer.db.fetchval("SELECT COUNT(*) AS n FROM job") == 0
        assert await observer.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 0
    assert await observer.db.fetchval("SELECT COUNT(*) AS n FROM job") == 1
    assert await observer.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 1
    assert ticket.id == await observer.db.fetchval("SELECT id FROM ticket")


async def test_a_rolled_back_transaction_leaves_no_job(helpdesk_factory: HelpdeskFactory) -> None:
    recorder = Recorder()
    app = await helpdesk_factory(extra_plugins=[("recorder", recorder)])

    class Boom(Exception):
        """Raised to roll the transaction back."""

    with pytest.raises(Boom):
        async with app.db.transaction():
            await app.tickets.create(SYSTEM, new_ticket())
            await app.jobs.enqueue("notify", {"notification": {}}, key="extra")
            raise Boom
    assert await jobs(app) == []
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 0
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM ticket_event") == 0
    assert await app.jobs.drain() == 0
    assert recorder.seen == []


async def test_enqueue_is_idempotent_by_key_and_refuses_unknown_kinds(helpdesk: App) -> None:
    async with helpdesk.db.transaction():
        await helpdesk.jobs.enqueue("notify", {"n": 1}, key="same")
        await helpdesk.jobs.enqueue("notify", {"n": 2}, key="same")
    rows = await jobs(helpdesk)
    assert len(rows) == 1
    with pytest.raises(ValueError, match="no handler"):
        await helpdesk.jobs.enqueue("no_such_kind", {})


async def test_failing_plugin_is_retried_after_backoff_alone(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    good, flaky = Recorder(), Flaky(failures=2)
    app = await helpdesk_factory(extra_plugins=[("good", good), ("flaky", flaky)])
    await app.tickets.create(SYSTEM, new_ticket())

    assert await app.jobs.drain() == 1
    assert (len(good.seen), flaky.calls) == (1, 1)
    [job] = await jobs(app)
    assert job["status"] == "pending"
    assert job["attempts"] == 1
    assert "smtp relay down (call 1)" in job["last_error"]
    assert "flaky" in job["last_error"]

    # Not due before the backoff (2 s after the first attempt) has passed.
    clock.advance(seconds=1)
    assert await app.jobs.drain() == 0
    assert flaky.calls == 1

    clock.advance(seconds=1)
    assert await app.jobs.drain() == 1
    assert (len(good.seen), flaky.calls) == (1, 2)
    [job] = await jobs(app)
    assert (job["status"], job["attempts"]) == ("pending", 2)

    clock.advance(seconds=3)
    assert await app.jobs.drain() == 0  # second backoff is 4 s
    clock.advance(seconds=1)
    assert await app.jobs.drain() == 1
    assert (len(good.seen), flaky.calls) == (1, 3)
    [job] = await jobs(app)
    assert job["status"] == "done"
    assert job["last_error"] is None
    assert await app.jobs.drain() == 0


async def test_job_is_dead_after_max_attempts(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    broken = Flaky(failures=1_000)
    app = await helpdesk_factory(extra_plugins=[("broken", broken)])
    await app.tickets.create(SYSTEM, new_ticket())
    [job] = await jobs(app)
    max_attempts = job["max_attempts"]
    assert max_attempts > 1
    for attempt in range(1, max_attempts + 1):
        assert await app.jobs.drain() == 1, attempt
        clock.advance(hours=1)
    assert broken.calls == max_attempts
    [job] = await jobs(app)
    assert job["status"] == "dead"
    assert job["attempts"] == max_attempts
    assert f"call {max_attempts}" in job["last_error"]
    assert job["finished_at"] is not None
    clock.advance(days=1)
    assert await app.jobs.drain() == 0
    assert broken.calls == max_attempts
    assert await app.jobs.counts() == {"dead": 1}


async def test_a_job_whose_worker_died_is_claimed_again(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    recorder = Recorder()
    app = await helpdesk_factory(extra_plugins=[("recorder", recorder)])
    await app.tickets.create(SYSTEM, new_ticket())

    dead_worker = app.jobs
    [claimed] = await dead_worker.claim()
    row = (await jobs(app))[0]
    assert row["status"] == "running"
    assert row["locked_by"] == dead_worker.worker_id
    # ... and the worker dies without finishing it.

    other = JobQueue(app, dead_worker.handlers)
    assert other.worker_id != dead_worker.worker_id
    assert await other.claim() == []  # the lease still holds
    clock.advance(seconds=59)
    assert await other.claim() == []
    clock.advance(seconds=2)
    [again] = await other.claim()
    assert again.id == claimed.id
    assert again.attempts == 2
    row = (await jobs(app))[0]
    assert (row["status"], row["locked_by"]) == ("running", other.worker_id)
    assert await other.run_job(again)
    assert len(recorder.seen) == 1
    assert (await jobs(app))[0]["status"] == "done"

    # The late original worker cannot overwrite the outcome recorded by the new owner.
    await dead_worker._finish(claimed, RuntimeError("late failure"))
    row = (await jobs(app))[0]
    assert (row["status"], row["last_error"]) == ("done", None)


async def test_a_second_app_reclaims_an_expired_lease(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    recorder = Recorder()
    crashed = await helpdesk_factory(extra_plugins=[("recorder", Recorder())])
    survivor = await helpdesk_factory(extra_plugins=[("recorder", recorder)])
    await crashed.tickets.create(SYSTEM, new_ticket())
    assert len(await crashed.jobs.claim()) == 1
    await crashed.stop()  # the process is gone; its job stays 'running'
    assert await survivor.jobs.drain() == 0
    clock.advance(minutes=2)
    assert await survivor.jobs.drain() == 1
    assert [kind for _, kind, _ in recorder.seen] == ["created"]


async def test_concurrent_claimers_never_share_a_job(helpdesk_factory: HelpdeskFactory) -> None:
    first = await helpdesk_factory()
    second = await helpdesk_factory()
    async with first.db.transaction():
        for i in range(60):
            await first.jobs.enqueue("notify", {"i": i}, key=f"n{i}")
    queues = [
        first.jobs,
        second.jobs,
        JobQueue(first, first.jobs.handlers),
        JobQueue(second, second.jobs.handlers),
    ]
    claimed: dict[str, list[int]] = {q.worker_id: [] for q in queues}
    while True:
        batches = await asyncio.gather(*(q.claim(limit=4) for q in queues))
        if not any(batches):
            break
        for queue, batch in zip(queues, batches, strict=True):
            claimed[queue.worker_id] += [job.id for job in batch]
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert len(every) == 60
    assert len(set(every)) == 60, "a job was handed to two claimers"
    rows = await jobs(first)
    owner = {job_id: worker for worker, ids in claimed.items() for job_id in ids}
    assert all(r["locked_by"] == owner[r["id"]] for r in rows)
    assert all(r["attempts"] == 1 for r in rows)
    assert sum(1 for ids in claimed.values() if ids) >= 2  # the work was shared


async def test_concurrent_drains_deliver_each_event_once(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    one, two = Recorder(), Recorder()
    first = await helpdesk_factory(extra_plugins=[("recorder", one)])
    second = await helpdesk_factory(extra_plugins=[("recorder", two)])
    for i in range(12):
        await first.tickets.create(SYSTEM, new_ticket(f"Ticket {i}"))
    counts = await asyncio.gather(first.jobs.drain(), second.jobs.drain())
    assert sum(counts) == 12
    delivered = [event_id for event_id, _, _ in one.seen + two.seen]
    assert sorted(delivered) == sorted(set(delivered))
    assert len(delivered) == 12


async def test_embedded_worker_delivers_after_commit(helpdesk_factory: HelpdeskFactory) -> None:
    recorder = Recorder()
    app = await helpdesk_factory(extra_plugins=[("recorder", recorder)])
    app.jobs.start_worker(poll_interval=30)  # only a wake-up can make it run in time
    try:
        await asyncio.sleep(0.05)  # let the worker go idle, waiting to be woken
        ticket = await app.tickets.create(SYSTEM, new_ticket())
        for _ in range(1000):  # well under the 30 s poll: only the wake-up explains it
            if recorder.seen:
                break
            await asyncio.sleep(0.01)
        assert [(kind, t) for _, kind, t in recorder.seen] == [("created", ticket.id)]
    finally:
        await asyncio.wait_for(app.jobs.stop_worker(), timeout=5)
    assert await app.jobs.counts() == {"done": 1}


async def test_stop_worker_is_prompt_while_the_worker_is_claiming(helpdesk: App) -> None:
    """A stop requested while the worker awaits its claim query must not be lost (the
    worker used to clear the wake-up flag after the claim and sleep a whole poll)."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        helpdesk.jobs.start_worker(poll_interval=30)
        await asyncio.sleep(0)  # the worker starts and awaits its first claim
        started = loop.time()
        await helpdesk.jobs.stop_worker()
        assert loop.time() - started < 5


class Channel:
    """A ``deliver_reply`` and ``notify`` plugin that records what it sent."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str, str]] = []
        self.notifications: list[Notification] = []

    @hookimpl
    async def deliver_reply(self, ticket: Ticket, reply: Entry, channel: str) -> bool:
        """Send the reply."""
        self.replies.append((ticket.id, reply.body_text, channel))
        return True

    @hookimpl
    def notify(self, notification: Notification) -> None:
        """Deliver a notification."""
        self.notifications.append(notification)


async def test_agent_reply_and_notification_jobs(helpdesk_factory: HelpdeskFactory) -> None:
    channel = Channel()
    app = await helpdesk_factory(extra_plugins=[("channel", channel)])
    ticket = await app.tickets.create(SYSTEM, new_ticket())
    note = await app.tickets.add_entry(SYSTEM, ticket.id, NewEntry(body="internal"), internal=True)
    reply = await app.tickets.add_entry(SYSTEM, ticket.id, NewEntry(body="Fixed"), internal=False)
    assert [r["kind"] for r in await jobs(app)] == ["deliver_reply"]
    async with app.db.transaction():
        await app.jobs.enqueue(
            "notify",
            {
                "notification": {
                    "kind": "assigned",
                    "ticket_id": ticket.id,
                    "recipients": ["agent@example.org"],
                    "subject": "New ticket",
                    "body": "for you",
                    "idempotency_key": "assigned:1",
                }
            },
        )
    assert await app.jobs.drain() == 2
    assert channel.replies == [(ticket.id, "Fixed", "api")]
    assert note.id != reply.id
    assert [n.kind for n in channel.notifications] == ["assigned"]
    delivered = (await jobs(app, "deliver_reply"))[0]
    assert load_json(delivered["payload"])["delivered_by_channel"] is True


# --- batches: each outcome recorded at once, in one statement ------------------------------


class PickyNotifier:
    """A ``notify`` plugin that fails, once, for notifications whose subject is ``bad``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.failed = 0

    @hookimpl
    def notify(self, notification: Notification) -> None:
        """Deliver, except the first time a ``bad`` subject comes."""
        if notification.subject == "bad" and not self.failed:
            self.failed += 1
            raise RuntimeError("mailbox full")
        self.sent.append(notification.subject)


def notification(subject: str) -> dict[str, Any]:
    """A ``notify`` job payload."""
    return {
        "notification": {
            "kind": "assigned",
            "ticket_id": 1,
            "recipients": ["agent@example.org"],
            "subject": subject,
            "body": "",
            "idempotency_key": subject,
        }
    }


async def test_each_job_of_a_batch_records_its_outcome_in_one_statement(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = PickyNotifier()
    app = await helpdesk_factory(extra_plugins=[("picky", notifier)])
    async with app.db.transaction():
        for subject in ("one", "bad", "three", "four"):
            await app.jobs.enqueue("notify", notification(subject), key=subject)
    statements: list[str] = []
    fetch = app.db.fetch

    async def counting_fetch(sql: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        statements.append(sql)
        return await fetch(sql, *args, **kwargs)

    monkeypatch.setattr(app.db, "fetch", counting_fetch)  # counts; the database is real
    assert await app.jobs.run_due() == 4
    monkeypatch.undo()

    done_updates = [s for s in statements if s.startswith("UPDATE job SET status = 'done'")]
    assert len(done_updates) == 3, "each success is recorded by one statement of its own"
    assert notifier.sent == ["one", "three", "four"]  # the failure did not stop the batch
    rows = {load_json(r["payload"])["notification"]["subject"]: r for r in await jobs(app)}
    assert {s: rows[s]["status"] for s in rows} == {
        "one": "done",
        "bad": "pending",
        "three": "done",
        "four": "done",
    }
    assert all(rows[s]["finished_at"] is not None for s in ("one", "three", "four"))
    assert all(rows[s]["locked_until"] is None for s in rows)
    bad = rows["bad"]
    assert (bad["attempts"], bad["finished_at"]) == (1, None)
    assert "mailbox full" in bad["last_error"]
    # Plugins done are kept in each completed job's payload (one CASE per job).
    assert all(load_json(rows[s]["payload"])["done"] == ["picky"] for s in ("one", "three"))

    assert await app.jobs.drain() == 0  # the failure waits for its backoff (2 s)
    clock.advance(seconds=2)
    assert await app.jobs.drain() == 1
    assert notifier.sent == ["one", "three", "four", "bad"]
    assert await app.jobs.counts() == {"done": 4}


class WorkerKilled(BaseException):
    """Stands for the process dying: no ``except Exception`` stops it, nothing after runs."""


async def test_a_worker_killed_after_the_work_before_completing_runs_it_again_once(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    """A worker that dies after a job's work but before recording it leaves the job
    ``running``. It runs again after the lease, and the automation's unique (rule, event)
    record keeps the rule's effect to one."""
    from ticketcore.domain.automation import RuleInput
    from ticketcore.services.automation_engine import automation_job_handlers

    app = await helpdesk_factory()
    await app.automation.create(
        SYSTEM,
        msgspec.convert(
            {
                "name": "tag new tickets",
                "events": ["created"],
                "actions": [
                    {"type": "add_tags", "tags": ["triaged"]},
                    {"type": "note", "body": "seen by the rule"},
                ],
            },
            RuleInput,
        ),
    )
    real = automation_job_handlers()["automation"]

    async def work_then_die(app: App, job: Any) -> None:
        await real(app, job)  # the rule fires and its transaction commits...
        raise WorkerKilled  # ...then the process dies before the outcome is recorded

    doomed = JobQueue(app, {**app.jobs.handlers, "automation": work_then_die})
    survivor = JobQueue(app, {**app.jobs.handlers, **automation_job_handlers()})
    ticket = await app.tickets.create(SYSTEM, new_ticket())
    [automation] = await jobs(app, "automation")

    with pytest.raises(WorkerKilled):
        await doomed.run_due()
    # The rule fired (its transaction committed) but the job was not marked done.
    assert (await app.tickets.snapshot(ticket.id)).tags == ["triaged"]
    row = next(r for r in await jobs(app) if r["id"] == automation["id"])
    assert (row["status"], row["locked_by"]) == ("running", doomed.worker_id)

    assert await survivor.run_due() == 0  # the lease still holds
    clock.advance(minutes=2)  # the dead worker's lease expires
    while await survivor.run_due():
        pass
    rows = await jobs(app)
    assert {r["status"] for r in rows} == {"done"}
    assert next(r for r in rows if r["id"] == automation["id"])["attempts"] == 2
    events = await app.tickets.events(SYSTEM, ticket.id)
    assert [e.kind for e in events].count("automation_fired") == 1
    assert [e.kind for e in events].count("note_added") == 1
    assert (await app.tickets.snapshot(ticket.id)).tags == ["triaged"]
    assert await app.db.fetchval("SELECT COUNT(*) AS n FROM automation_fired") == 1

"""Several worker processes share the SLA timers: 1,000 tickets past their due time, a first
worker killed in the middle of a batch (inside its transaction, with a lease on 100
tickets), then two workers in separate processes finish everything. Every breach and every
escalation step is recorded once, and each notification reaches the webhook receiver
exactly once (de-duplicated by nobody: counted per delivery id). PostgreSQL shares the
timers with ``FOR UPDATE SKIP LOCKED``; SQLite serialises the workers on its write lock."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ticketcore import Priority
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.plugins.notifiers.testing import HttpReceiver

HelpdeskFactory = Callable[..., Awaitable[App]]
SCRIPT = Path(__file__).with_name("sla_worker_process.py")
TICKETS = 1000
LEASE_SECONDS = 3.0
MANAGER = "it-manager@example.org"


def settings(db_url: str, hook_url: str) -> dict[str, Any]:
    return {
        "database": {"url": db_url, "pool_size": 4},
        "plugins": {"sla": ["policy"], "notifiers": ["webhook"]},
        "plugin": {
            "sla": {
                "policy": {
                    "warning_share": 1.0,  # breaches only: one alert per ticket
                    "rules": [{"name": "critical", "resolution": "30m"}],
                    "escalations": [
                        {"stage": "breach", "steps": [{"notify": [MANAGER]}]},
                    ],
                }
            },
            "notifiers": {"webhook": {"urls": [hook_url], "secret": "whsec-workers"}},
        },
    }


async def start_worker(mode: str, config: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        mode,
        msgspec.json.encode(config).decode(),
        str(LEASE_SECONDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parent)},
    )


@pytest.mark.db
async def test_two_worker_processes_fire_1000_timers_once_after_a_killed_worker(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock, db_url: str
) -> None:
    async with HttpReceiver() as receiver:
        config = settings(db_url, receiver.url())
        app = await helpdesk_factory(**{k: v for k, v in config.items() if k != "database"})
        # The workers use the real clock: open the tickets two hours ago on the test clock.
        clock.advance(
            seconds=(datetime.now(UTC) - timedelta(hours=2) - clock.now()).total_seconds()
        )
        system = Principal.system()
        for start in range(0, TICKETS, 100):
            await asyncio.gather(
                *(
                    app.tickets.create(
                        system,
                        NewTicket(
                            subject=f"Server outage {n}",
                            body="down",
                            priority=Priority.CRITICAL,
                            requester=RequesterInput(email=f"ops{n % 50}@customer.test"),
                        ),
                    )
                    for n in range(start, start + 100)
                )
            )
        due = await app.db.fetchval(
            "SELECT COUNT(*) FROM ticket WHERE sla_next_check_at <= {}", datetime.now(UTC)
        )
        assert due == TICKETS

        # A worker claims a batch and dies in the middle of firing it.
        doomed = await start_worker("stall", config)
        assert doomed.stdout is not None
        line = await asyncio.wait_for(doomed.stdout.readline(), timeout=60)
        assert line.startswith(b"stalled"), line + (
            await doomed.stderr.read() if doomed.stderr else b""
        )
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        leased = await app.db.fetchval(
            "SELECT COUNT(*) FROM ticket WHERE sla_locked_by IS NOT NULL"
        )
        assert leased == 100  # its batch is still leased to the dead worker
        assert (
            await app.db.fetchval("SELECT COUNT(*) FROM ticket_event WHERE kind = 'sla_breach'")
            == 0
        )

        workers = [await start_worker("run", config) for _ in range(2)]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(w.communicate() for w in workers)), timeout=240
        )
        for worker, (_out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err.decode()[-3000:]
        handled = [int(out.split()[1]) for out, _ in outputs]
        assert sum(handled) == TICKETS
        assert all(n > 0 for n in handled), f"both workers share the timers: {handled}"
        print("tickets handled per worker:", handled)

    breaches = await app.db.fetch(
        "SELECT ticket, COUNT(*) AS n FROM ticket_event WHERE kind = 'sla_breach' GROUP BY ticket"
    )
    assert len(breaches) == TICKETS and {r["n"] for r in breaches} == {1}
    steps = await app.db.fetch(
        "SELECT ticket, COUNT(*) AS n FROM ticket_event WHERE kind = 'sla_escalated' "
        "GROUP BY ticket"
    )
    assert len(steps) == TICKETS and {r["n"] for r in steps} == {1}
    jobs = await app.db.fetch("SELECT status, COUNT(*) AS n FROM job GROUP BY status")
    assert {r["status"]: r["n"] for r in jobs} == {"done": 2 * TICKETS}
    deliveries = Counter(r.headers["x-ticketcore-delivery"] for r in receiver.requests)
    assert len(deliveries) == 2 * TICKETS and set(deliveries.values()) == {1}
    to_manager = [r for r in receiver.requests if r.json()["recipients"] == [MANAGER]]
    assert len(to_manager) == TICKETS
    left = await app.db.fetchval(
        "SELECT COUNT(*) FROM ticket WHERE sla_next_check_at IS NOT NULL "
        "OR sla_locked_by IS NOT NULL"
    )
    assert left == 0

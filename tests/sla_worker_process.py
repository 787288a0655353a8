"""A worker process for the multi-process SLA tests (run as a script, not collected).

``python sla_worker_process.py run|stall SETTINGS_JSON LEASE_SECONDS``

- ``run``: work the job table and the SLA timers (the ``ticketcore worker`` loop, batch
  after batch) until no SLA timer and no job is left to do, then print
  ``done <tickets handled> <jobs run>`` and exit;
- ``stall``: claim a batch of due SLA timers and start firing them, then stop in the middle
  of the batch (inside its transaction) and print ``stalled <n>``: the test kills it there.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from typing import Any

import msgspec

from ticketcore.app import App, create_helpdesk
from ticketcore.config import settings_from_mapping


async def remaining(app: App) -> int:
    """SLA timers and jobs not finished yet (due or not, leased or not)."""
    rows = await app.db.fetch(
        "SELECT (SELECT COUNT(*) FROM ticket WHERE sla_next_check_at IS NOT NULL) + "
        "(SELECT COUNT(*) FROM job WHERE status IN ('pending', 'running')) AS n"
    )
    return int(rows[0]["n"])


async def run(app: App) -> None:
    tickets = jobs = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        handled = await app.sla_timers.run_due()
        ran = await app.jobs.run_due()
        tickets += handled
        jobs += ran
        if not handled and not ran:
            if not await remaining(app):
                break
            await asyncio.sleep(0.1)  # e.g. waiting for a dead worker's lease to expire
    print(f"done {tickets} {jobs}", flush=True)


async def stall(app: App) -> None:
    timers = app.sla_timers
    original = timers._fire_one
    calls = 0

    async def fire_one(row: dict[str, Any], now: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 10:  # mid-batch, inside the transaction: wait to be killed
            print(f"stalled {calls}", flush=True)
            await asyncio.sleep(3600)
        return await original(row, now)

    timers._fire_one = fire_one  # type: ignore[method-assign]
    await timers.run_due()


async def main(mode: str, settings_json: str, lease_seconds: float) -> None:
    data = msgspec.json.decode(settings_json)
    app = create_helpdesk(settings_from_mapping(data, env={}))
    app.sla_timers.lease = timedelta(seconds=lease_seconds)
    app.jobs.lease = timedelta(seconds=lease_seconds)
    await app.start(run_migrations=False)
    try:
        await (run(app) if mode == "run" else stall(app))
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))

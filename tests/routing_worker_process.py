"""A helpdesk process for the multi-process routing and automation tests (run as a script,
not collected).

``python routing_worker_process.py route|work SETTINGS_JSON COUNT TAG GO_FILE``

Both print ``ready`` once started, then wait for ``GO_FILE`` to exist, so the processes of
a test start their work at the same moment.

- ``route``: create COUNT tickets (a few at a time, as an intake would) and print
  ``assigned <json list of assignee ids>``;
- ``work``: run the job worker until no job is pending or running, print ``worked <jobs>``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import msgspec

from ticketcore.app import App, create_helpdesk
from ticketcore.config import settings_from_mapping
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal


async def route(app: App, count: int, tag: str) -> None:
    system = Principal.system()
    assigned: list[int | None] = []
    for start in range(0, count, 4):
        made = await asyncio.gather(
            *[
                app.tickets.create(
                    system,
                    NewTicket(
                        subject=f"{tag} {i}", requester=RequesterInput(email=f"{tag}@x.example")
                    ),
                )
                for i in range(start, min(start + 4, count))
            ]
        )
        assigned += [t.assignee_id for t in made]
    print("assigned " + msgspec.json.encode(assigned).decode(), flush=True)


async def work(app: App) -> None:
    jobs = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ran = await app.jobs.run_due()
        jobs += ran
        if not ran:
            left = await app.db.fetchval(
                "SELECT COUNT(*) AS n FROM job WHERE status IN ('pending', 'running')"
            )
            if not left:
                break
            await asyncio.sleep(0.05)
    print(f"worked {jobs}", flush=True)


async def main(mode: str, settings_json: str, count: int, tag: str, go_file: str) -> None:
    app = create_helpdesk(settings_from_mapping(msgspec.json.decode(settings_json), env={}))
    await app.start(run_migrations=False)
    try:
        print("ready", flush=True)
        while not os.path.exists(go_file):
            await asyncio.sleep(0.01)
        await (route(app, count, tag) if mode == "route" else work(app))
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))

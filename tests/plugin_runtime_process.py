"""A helpdesk process for ``test_plugin_runtime`` (run as a script, not collected).

``python plugin_runtime_process.py SETTINGS_JSON``: starts a helpdesk and its job worker,
prints ``enabled [...]`` (the plugins running) at start and after every change it picks up
from the database, and stops after 60 s.
"""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec

from ticketcore.app import create_helpdesk
from ticketcore.config import settings_from_mapping


async def main(raw: str) -> None:
    settings = settings_from_mapping(msgspec.json.decode(raw), env={})
    app = create_helpdesk(settings)
    await app.start()
    app.plugin_runtime.max_age = 0.2
    app.jobs.start_worker(poll_interval=0.2)
    try:
        shown = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = [p.qualified_name for p in app.plugins]
            if names != shown:
                print(f"enabled {names}", flush=True)
                shown = names
            await asyncio.sleep(0.05)
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

"""Server time of the agent's pages with a million tickets (issue #6: under 100 ms).

    python bench/web_bench.py                          # 1,000,000 tickets, both engines
    python bench/web_bench.py --engines sqlite --tickets 100000 --requests 50

Per engine, on a fresh database (a SQLite file or a PostgreSQL schema ``bench_<random>``,
dropped afterwards unless ``--keep``):

1. migrate; seed 4 teams and one agent in all of them (``apibench.server.seed_target``);
   bulk-preload 1,000 contacts and ``--tickets`` tickets (``apibench.preload``: 30 % new,
   30 % open, 7 % pending, 3 % on hold, 20 % resolved, 10 % closed; 70 % of the non-new
   ones assigned to the agent, so "Mine" holds about 200,000 tickets); then
   ``--conversations`` tickets get a conversation of 12 entries (messages, replies, notes)
   and their history through the services;
2. build the web app in-process (``create_app``) with a signed-in session cookie for the
   agent, and time ``--requests`` GETs of each page after 10 untimed ones: the four queue
   views, their live fragments, a ticket page picked uniformly among all tickets, and a
   ticket page with a conversation.

"Server time" is the wall time of one request handled in-process through the ASGI app
(routing, session, every query, template rendering; no network, no HTTP parsing), one
request at a time. Prints p50 / p95 / p99 / max in ms per page and writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apibench.preload import preload, ticket_id_range
from apibench.server import create_target, drop_target, seed_target

from ticketcore.app import App, create_helpdesk
from ticketcore.config import load_settings
from ticketcore.domain.commands import NewEntry, NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.web import create_app
from ticketcore.web.ui.session import COOKIE_NAME, Session

logging.getLogger("httpx").setLevel(logging.WARNING)
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_MS = 100.0
WARMUP = 10
console = Console()


async def add_conversations(app: App, count: int, seed: int) -> list[int]:
    """``count`` tickets with 12 entries each, written through the services."""
    agent = await app.auth.user_by_email("agent@bench.test")
    rng = random.Random(seed)
    made: list[int] = []
    for n in range(count):
        requester = RequesterInput(email=f"preload{rng.randrange(1000)}@example.com")
        ticket = await app.tickets.create(
            agent,
            NewTicket(subject=f"Conversation {n}", body="First message " * 20, requester=requester),
        )
        for k in range(11):
            await app.tickets.add_entry(
                agent, ticket.id, NewEntry(body=f"Entry {k} " * 30), internal=k % 3 == 2
            )
        made.append(ticket.id)
    return made


async def time_pages(
    app: App, agent: Principal, pages: dict[str, Any], requests: int
) -> dict[str, list[float]]:
    """Milliseconds per request of each page (after WARMUP untimed requests)."""
    web = create_app(app, run_worker=False)
    ui = web.state.ui
    cookie = ui.codec.encode(Session().signed_in(agent.id, 3600))
    timings: dict[str, list[float]] = {}
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        client.cookies.set(COOKIE_NAME, cookie)
        for name, url_of in pages.items():
            samples: list[float] = []
            for i in range(WARMUP + requests):
                url = url_of()
                started = time.perf_counter()
                response = await client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
                if i >= WARMUP:
                    samples.append(elapsed)
            timings[name] = samples
            console.print(f"  {name}: p50 {statistics.median(samples):.1f} ms")
    return timings


def quantile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Preload one database and time the pages on it."""
    target = await create_target(engine, workdir / engine, args.pg_dsn)
    try:
        console.print(f"[bold]{engine}[/]: seeding and preloading {args.tickets:,} tickets")
        await seed_target(target)
        started = time.perf_counter()
        await preload(target, args.tickets, args.seed)
        console.print(f"  preload: {time.perf_counter() - started:.0f} s")
        low, high = await ticket_id_range(target)
        app = create_helpdesk(load_settings(target.config_path))
        await app.start()
        try:
            conversations = await add_conversations(app, args.conversations, args.seed)
            agent = await app.auth.user_by_email("agent@bench.test")
            rng = random.Random(args.seed)
            pages: dict[str, Any] = {
                f"queue {view}": (lambda v=view: f"/agent/queue/{v}")
                for view in ("mine", "unassigned", "team", "pending")
            }
            pages["queue mine (live fragment)"] = lambda: "/agent/queue/mine?fragment=1"
            pages["ticket (any of all)"] = lambda: f"/agent/tickets/{rng.randint(low, high)}"
            pages["ticket with 12 entries"] = lambda: f"/agent/tickets/{rng.choice(conversations)}"
            pages["ticket (live fragment)"] = lambda: (
                f"/agent/tickets/{rng.choice(conversations)}?fragment=1"
            )
            timings = await time_pages(app, agent, pages, args.requests)
        finally:
            await app.stop()
        return {"tickets": high - low + 1, "timings": timings}
    finally:
        if not args.keep:
            await drop_target(target)


def report(results: dict[str, dict[str, Any]]) -> bool:
    """Print one table per engine; True when every page's p95 is under TARGET_MS."""
    ok = True
    for engine, result in results.items():
        table = Table(title=f"{engine}: {result['tickets']:,} tickets, server time in ms")
        for column in ("page", "n", "p50", "p95", "p99", "max", f"p95 < {TARGET_MS:.0f}"):
            table.add_column(column, justify="left" if column == "page" else "right")
        for page, samples in result["timings"].items():
            p95 = quantile(samples, 0.95)
            ok &= p95 < TARGET_MS
            table.add_row(
                page,
                str(len(samples)),
                f"{statistics.median(samples):.1f}",
                f"{p95:.1f}",
                f"{quantile(samples, 0.99):.1f}",
                f"{max(samples):.1f}",
                "yes" if p95 < TARGET_MS else "[red]NO[/]",
            )
        console.print(table)
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--pg-dsn", default=DEFAULT_DSN)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="web-bench-"))
    results = {
        engine: await run_engine(engine, args, workdir)
        for engine in (e.strip() for e in args.engines.split(","))
        if engine
    }
    ok = report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"web-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "machine": platform.platform(),
                "results": results,
            },
            indent=1,
        )
    )
    console.print(f"results: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

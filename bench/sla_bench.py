"""SLA benchmark on PostgreSQL: the tickets nearest to breach among a million open ones, and
how many due SLA timers worker processes fire per second.

    python bench/sla_bench.py          # 1,000,000 tickets; 10,000 due timers, 1 then 2 workers
    python bench/sla_bench.py --tickets 100000 --due 2000 --workers 2

Steps, in a fresh schema ``bench_sla_<random>`` (dropped at the end unless ``--keep``):

1. migrate; COPY ``--tickets`` open tickets with the SLA state the core keeps (policy, due
   times spread over the next 30 days, ``sla_due_at``, the next timer in
   ``sla_next_check_at``, not due yet); ANALYZE;
2. **nearest to breach**: ``app.sla_timers.nearest_due(1000)`` (``ORDER BY sla_due_at LIMIT
   1000`` on the partial index) timed ``--repeat`` times, with the plan shown; also the
   due-timer probe the workers run before claiming;
3. **worker throughput**, per count in ``--workers``: make ``--due`` tickets' breach timers
   due now, start that many ``worker processes`` (each a helpdesk with the ``policy`` SLA
   plugin, an escalation chain of one notify step and the webhook notifier, so every firing
   writes its two history events and two outbox jobs), and time until every timer has
   fired; timers per second = due / wall time (process start-up excluded: each worker
   waits for a start signal).

Targets (issue #5): nearest 1,000 under 20 ms; at least 500 timers per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.table import Table

from ticketcore.app import App, create_helpdesk
from ticketcore.config import settings_from_mapping

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CONTACTS = 1_000
BATCH = 50_000
COLUMNS = (
    "key",
    "subject",
    "description",
    "status",
    "priority",
    "category",
    "channel",
    "requester",
    "custom_fields",
    "tags",
    "version",
    "created_at",
    "updated_at",
    "sla_policy",
    "first_response_due_at",
    "resolution_due_at",
    "sla_due_at",
    "sla_next_check_at",
    "sla_timers",
    "sla_fired",
    "sla_pauses",
)


def settings(dsn: str, schema: str) -> dict[str, Any]:
    """A helpdesk on ``schema`` with the SLA policy, one escalation step and a webhook."""
    sep = "&" if "?" in dsn else "?"
    return {
        "database": {"url": f"{dsn}{sep}search_path={schema}", "pool_size": 4},
        "plugins": {"sla": ["policy"], "notifiers": ["webhook"]},
        "plugin": {
            "sla": {
                "policy": {
                    "rules": [{"name": "standard", "first_response": "4h", "resolution": "3d"}],
                    "escalations": [
                        {"stage": "breach", "steps": [{"notify": ["manager@example.org"]}]}
                    ],
                }
            },
            # Never delivered during the benchmark: the workers only fire SLA timers.
            "notifiers": {"webhook": {"urls": ["http://127.0.0.1:9/"], "secret": "bench"}},
        },
    }


def helpdesk(config: dict[str, Any]) -> App:
    """A helpdesk (not started) from a settings mapping."""
    return create_helpdesk(settings_from_mapping(config, env={}))


def _rows(
    rng: random.Random, start: int, end: int, contacts: list[int], now: datetime
) -> list[Any]:
    rows = []
    for n in range(start, end):
        created = now - timedelta(minutes=rng.randint(0, 60 * 24))
        # Nothing falls due while the benchmark runs: due times from two hours ahead.
        first = created + timedelta(hours=4) if created > now - timedelta(hours=2) else None
        resolution = now + timedelta(minutes=rng.randint(120, 60 * 24 * 30))
        due = min(first, resolution) if first else resolution
        check = now + (due - now) * 0.75  # the warning: not due during the run
        timers = [[check.isoformat(), "resolution", "warning", due.isoformat()]]
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                f"Benchmark ticket {n}",
                "Please help",
                "open",
                "normal",
                None,
                "email",
                rng.choice(contacts),
                "{}",
                "[]",
                1,
                created,
                created,
                "standard",
                first,
                resolution,
                due,
                check,
                msgspec.json.encode(timers).decode(),
                "[]",
                "[]",
            )
        )
    return rows


async def preload(conn: asyncpg.Connection, schema: str, total: int, console: Console) -> float:
    """COPY ``total`` open tickets with SLA state; return the seconds it took."""
    started = time.perf_counter()
    await conn.copy_records_to_table(
        "contact",
        records=[
            (f"Customer {k}", f"c{k}@example.com", False, datetime.now(UTC))
            for k in range(CONTACTS)
        ],
        columns=["name", "email", "vip", "created_at"],
        schema_name=schema,
    )
    contacts = [r["id"] for r in await conn.fetch(f"SELECT id FROM {schema}.contact")]
    rng = random.Random(5)
    now = datetime.now(UTC)
    for low in range(0, total, BATCH):
        rows = _rows(rng, low, min(low + BATCH, total), contacts, now)
        await conn.copy_records_to_table(
            "ticket", records=rows, columns=list(COLUMNS), schema_name=schema
        )
        console.print(f"  preloaded {min(low + BATCH, total):,} tickets", highlight=False)
    await conn.execute(f"ANALYZE {schema}.ticket, {schema}.contact")
    return time.perf_counter() - started


async def time_query(app: App, repeat: int) -> list[float]:
    """Milliseconds of each ``nearest_due(1000)`` call."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        found = await app.sla_timers.nearest_due(1000)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(found) == 1000
    return timings


async def time_probe(app: App, repeat: int) -> list[float]:
    """Milliseconds of each "is any timer due?" probe (what an idle worker runs)."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        await app.sla_timers.any_due()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def make_due(conn: asyncpg.Connection, schema: str, count: int, seed: int) -> None:
    """Give ``count`` random tickets a breach timer that is due now."""
    now = datetime.now(UTC)
    due = now - timedelta(minutes=1)
    timers = msgspec.json.encode([[due.isoformat(), "resolution", "breach", due.isoformat()]])
    high = await conn.fetchval(f"SELECT max(id) FROM {schema}.ticket")
    ids = random.Random(seed).sample(range(1, high + 1), count)
    await conn.execute(
        f"UPDATE {schema}.ticket SET sla_next_check_at = $1, resolution_due_at = $1, "
        "sla_due_at = $1, sla_timers = $2::json, sla_fired = '[]' WHERE id = ANY($3::bigint[])",
        due,
        timers.decode(),
        ids,
    )


async def run_workers(
    config: dict[str, Any], count: int, due: int, conn: asyncpg.Connection, schema: str
) -> tuple[float, list[int]]:
    """Start ``count`` worker processes, release them together, wait until every due timer
    has fired; return the wall time and the timers each fired."""
    go = Path(f"/tmp/sla-bench-go-{uuid.uuid4().hex}")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker-mode",
            msgspec.json.encode(config).decode(),
            str(go),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for proc in procs:  # each prints "ready" once started and connected
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line.startswith(b"ready"):
            err = await proc.stderr.read() if proc.stderr else b""
            raise RuntimeError(f"worker failed to start: {line!r} {err.decode()[-2000:]}")
    started = time.perf_counter()
    go.touch()
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    elapsed = time.perf_counter() - started
    go.unlink(missing_ok=True)
    fired = [int(out.split()[1]) for out, _ in outputs]
    left = await conn.fetchval(
        f"SELECT COUNT(*) FROM {schema}.ticket WHERE sla_next_check_at <= now()"
    )
    breaches = await conn.fetchval(
        f"SELECT COUNT(*) FROM {schema}.ticket_event WHERE kind = 'sla_breach'"
    )
    if left or sum(fired) != due:
        raise RuntimeError(f"{left} timers left; fired {fired} of {due}")
    await conn.execute(f"DELETE FROM {schema}.ticket_event; DELETE FROM {schema}.job")
    assert breaches == due
    return elapsed, fired


async def worker_mode(config_json: str, go: str) -> None:
    """One worker process: fire due SLA timers until none is left; print how many."""
    app = helpdesk(msgspec.json.decode(config_json))
    await app.start(run_migrations=False)
    try:
        print("ready", flush=True)
        while not os.path.exists(go):
            await asyncio.sleep(0.005)
        fired = 0
        while True:
            handled = await app.sla_timers.run_due()
            if not handled:
                break
            fired += handled
        print(f"fired {fired}", flush=True)
    finally:
        await app.stop()


def stats(timings: list[float]) -> str:
    """``median / p95 / min`` of timings in milliseconds."""
    ordered = sorted(timings)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"{statistics.median(ordered):.2f} / {p95:.2f} / {ordered[0]:.2f}"


async def main(args: argparse.Namespace) -> None:
    console = Console()
    schema = f"bench_sla_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(args.pg_dsn)
    await conn.execute(f"CREATE SCHEMA {schema}")
    config = settings(args.pg_dsn, schema)
    app = helpdesk(config)
    results: list[tuple[str, str, str, str]] = []
    try:
        await app.start()
        console.print(f"schema {schema}: preloading {args.tickets:,} open tickets")
        seconds = await preload(conn, schema, args.tickets, console)
        results.append(
            ("preload (COPY + ANALYZE)", f"{args.tickets:,} tickets", f"{seconds:.1f} s", "")
        )
        plan = await conn.fetch(
            f"EXPLAIN SELECT id, sla_due_at FROM {schema}.ticket WHERE sla_due_at IS NOT NULL "
            "ORDER BY sla_due_at LIMIT 1000"
        )
        console.print("plan: " + " | ".join(r[0].strip() for r in plan), highlight=False)
        await time_query(app, 3)  # warm-up
        timings = await time_query(app, args.repeat)
        ok = "yes" if statistics.median(timings) < 20 else "NO"
        results.append(
            ("nearest 1,000 to breach", "median / p95 / min ms", stats(timings), f"< 20 ms: {ok}")
        )
        probe = await time_probe(app, args.repeat)
        results.append(("due-timer probe (none due)", "median / p95 / min ms", stats(probe), ""))
        for round_number, count in enumerate(args.workers):
            await make_due(conn, schema, args.due, seed=round_number)
            probe = await time_probe(app, args.repeat)
            elapsed, fired = await run_workers(config, count, args.due, conn, schema)
            rate = args.due / elapsed
            results.append(
                (
                    f"worker throughput, {count} process(es)",
                    f"{args.due:,} timers in {elapsed:.2f} s (per worker {fired})",
                    f"{rate:,.0f} timers/s",
                    f">= 500/s: {'yes' if rate >= 500 else 'NO'}",
                )
            )
    finally:
        await app.stop()
        if not args.keep:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
    table = Table(title=f"SLA benchmark, PostgreSQL, {args.tickets:,} open tickets")
    for column in ("measure", "detail", "result", "target"):
        table.add_column(column)
    for row in results:
        table.add_row(*row)
    console.print(table)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-dsn", default=DEFAULT_DSN)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000, help="due timers per worker round")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=50, help="timed query repetitions")
    parser.add_argument("--keep", action="store_true", help="keep the schema")
    parser.add_argument("--worker-mode", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.worker_mode:
        asyncio.run(worker_mode(*arguments.worker_mode))
    else:
        asyncio.run(main(arguments))

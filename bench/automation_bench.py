"""Routing plus automation: the cost they add per ticket, at 1,000 agents and 200 rules.

    python bench/automation_bench.py                       # SQLite and PostgreSQL
    python bench/automation_bench.py --engines sqlite --tickets 300

For each engine, four configurations on a fresh database each (a temporary SQLite file, or
a PostgreSQL schema ``bench_auto_<random>`` dropped at the end), with the same people:
``--teams`` teams sharing ``--agents`` agents (all online), in-process, no HTTP:

- ``baseline``: no routing strategy, no rule;
- ``routing``: the ``rules`` strategy (one rule per team, by category) then ``round_robin``;
- ``routing + rules, none fire``: the same plus ``--rules`` automation rules: 180 event
  rules on ``created``/``updated``/``status_changed``/``message_added`` events with
  conditions on priority changes, tags, channel, subject words, message text and custom
  fields, and 20 time rules (pending for N days); no ticket matches any: the cost of
  queueing and evaluating;
- ``routing + rules, one fires``: the same rules, but every ticket's subject holds the word
  of one of the 20 "subject keyword" rules, which adds a tag: one firing and one follow-up
  ``updated`` event (evaluated again) per ticket. A new ticket's rules that only set tags,
  priority or category (or notify) are applied while it is written (in its transaction);
- ``routing + rules, one fires (worker)``: the same, but the keyword rules also add an
  internal note, which the inline path leaves to the worker: the firing is its own
  transaction after commit, as for every change to an existing ticket.

On PostgreSQL the seeded tables are ANALYZEd, as autovacuum would do after such a load.
Each configuration creates ``--tickets`` tickets through ``app.tickets.create`` (one at a
time by default, or ``--concurrency`` at once: the batch writer then shares the routing
snapshot), then runs the job worker until nothing is left. Reported per ticket: time to
create, worker time, total, and the total minus the baseline's: the cost routing and
automation add. Each configuration runs ``--runs`` times; the median run is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from ticketcore.app import App, create_helpdesk
from ticketcore.config import settings_from_mapping
from ticketcore.domain.automation import RuleInput
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Principal

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM = Principal.system()
#: Configurations: (name, routing on, rules on, tickets carry a keyword one rule fires on,
#: the keyword rules also add a note: the worker fires them).
CONFIGS = (
    ("baseline", False, False, False, False),
    ("routing", True, False, False, False),
    ("routing + rules, none fire", True, True, False, False),
    ("routing + rules, one fires", True, True, True, False),
    ("routing + rules, one fires (worker)", True, True, True, True),
)


def settings(routing: bool, url: str, storage: str, teams: int) -> dict[str, Any]:
    """Helpdesk settings, with or without the routing strategies."""
    data: dict[str, Any] = {"database": {"url": url}, "storage_dir": storage}
    if routing:
        data["plugins"] = {"routing": ["rules", "round_robin"]}
        data["plugin"] = {
            "routing": {
                "rules": {
                    "rules": [
                        {"name": f"team {t}", "team": f"team-{t}", "categories": [f"cat{t}"]}
                        for t in range(teams)
                    ]
                },
                "round_robin": {"default_team": "team-0"},
            }
        }
    return data


async def seed_people(app: App, teams: int, agents: int) -> None:
    """``teams`` teams and ``agents`` online agents spread over them, in a few statements."""
    team_ids = [await app.directory.create_team(f"Team {t}", f"team-{t}") for t in range(teams)]
    now = app.clock.now()
    db = app.db
    for start in range(0, agents, 200):
        chunk = range(start, min(start + 200, agents))
        values = ", ".join(["({}, {}, 'agent', {}, {}, 'online', {})"] * len(chunk))
        args: list[Any] = []
        for i in chunk:
            args += [f"agent{i}@bench.example", f"Agent {i}", True, True, now]
        rows = await db.fetch(
            "INSERT INTO app_user (email, name, role, active, available, availability, "
            f"created_at) VALUES {values} RETURNING id",
            *args,
        )
        members = [(team_ids[(start + j) % teams], row["id"]) for j, row in enumerate(rows)]
        await db.fetch(
            'INSERT INTO team_member (team, "user", assigned_count) VALUES '
            + ", ".join(["({}, {}, 0)"] * len(members)),
            *[v for pair in members for v in pair],
        )


def automation_rules(count: int, with_note: bool = False) -> list[RuleInput]:
    """``count`` rules: 10 % time rules, the rest event rules of several shapes; exactly one
    keyword rule (of 20) matches each benchmark ticket (``with_note``: it also adds an
    internal note)."""
    rules: list[dict[str, Any]] = []
    for i in range(count):
        shape = i % 10
        rule: dict[str, Any] = {"name": f"rule {i:03d}"}
        if shape == 0:
            rule |= {
                "trigger": "time",
                "after_minutes": (i % 7 + 1) * 1440,
                "conditions": [{"field": "status", "op": "is", "value": "pending_customer"}],
                "actions": [{"type": "transition", "transition": "close"}],
            }
        elif shape == 1 and i // 10 < 20:
            rule |= {
                "events": ["created"],
                "conditions": [{"field": "subject", "op": "contains", "value": f"kw{i // 10}x"}],
                "actions": [{"type": "add_tags", "tags": [f"kw{i // 10}"]}]
                + ([{"type": "note", "body": "keyword seen"}] if with_note else []),
            }
        elif shape in (2, 3):
            rule |= {
                "events": ["updated"],
                "conditions": [
                    {"field": "priority", "op": "changed_to", "value": "critical"},
                    {"field": "custom_fields.region", "op": "is", "value": f"r{i}"},
                ],
                "actions": [{"type": "notify", "to": ["assignee"], "subject": "critical"}],
            }
        elif shape in (4, 5):
            rule |= {
                "events": ["updated"],
                "conditions": [{"field": "tags", "op": "added", "value": f"escalate{i}"}],
                "actions": [{"type": "set_field", "field": "priority", "value": "high"}],
            }
        elif shape == 6:
            rule |= {
                "events": ["status_changed"],
                "conditions": [
                    {"field": "status", "op": "changed_from", "value": "pending_customer"},
                    {"field": "status", "op": "changed_to", "value": "resolved"},
                ],
                "actions": [{"type": "add_tags", "tags": [f"t{i}"]}],
            }
        elif shape == 7:
            rule |= {
                "events": ["message_added"],
                "conditions": [{"field": "message", "op": "matches", "value": f"\\bword{i}\\b"}],
                "actions": [{"type": "note", "body": "matched"}],
            }
        else:
            rule |= {
                "events": ["created"],
                "conditions": [
                    {"field": "channel", "op": "is", "value": f"channel{i}"},
                    {"field": "text", "op": "contains", "value": f"phrase {i}"},
                ],
                "actions": [{"type": "set_field", "field": "category", "value": f"c{i}"}],
            }
        rules.append(rule)
    return [msgspec.convert(r, RuleInput) for r in rules]


async def create_tickets(
    app: App, count: int, concurrency: int, teams: int, keyword: bool = True
) -> None:
    """Create ``count`` tickets, ``concurrency`` at a time; with ``keyword``, each subject
    holds the word one of the 20 keyword rules fires on."""

    def make(i: int) -> Awaitable[Any]:
        word = f"kw{i % 20}x" if keyword else f"word{i % 20}"
        return app.tickets.create(
            SYSTEM,
            NewTicket(
                subject=f"Problem {i} {word}",
                body="Something does not work as expected.",
                requester=RequesterInput(email=f"customer{i % 200}@example.com"),
                category=f"cat{i % teams}",
                priority=Priority.NORMAL,
                channel="email",
            ),
        )

    for start in range(0, count, concurrency):
        await asyncio.gather(*[make(i) for i in range(start, min(start + concurrency, count))])


class Run(msgspec.Struct, kw_only=True):
    """One configuration's timings, in milliseconds per ticket."""

    create_ms: float
    worker_ms: float
    jobs: int
    fired: int

    @property
    def total_ms(self) -> float:
        """Create plus worker time per ticket."""
        return self.create_ms + self.worker_ms


async def run_config(
    config: tuple[str, bool, bool, bool, bool],
    args: argparse.Namespace,
    make_db: Callable[[], Any],
) -> Run:
    """Fresh database, seed, (rules), create tickets, drain the worker; timings."""
    _, routing, with_rules, keyword, with_note = config
    async with make_db() as url:
        with tempfile.TemporaryDirectory() as storage:
            app = create_helpdesk(
                settings_from_mapping(settings(routing, url, storage, args.teams), env={})
            )
            await app.start()
            try:
                await seed_people(app, args.teams, args.agents)
                if not app.db.is_sqlite:
                    # As autovacuum would soon after a bulk load: without statistics the
                    # planner takes app_user for one row and loads the roster by 1,000
                    # index probes (1.8 ms instead of a hash join).
                    await app.db.fetch("ANALYZE")
                admin = Principal.system()
                if with_rules:
                    for rule in automation_rules(args.rules, with_note):
                        await app.automation.create(admin, rule)
                # Warm up (connections, caches, the rule set) on a few untimed tickets.
                await create_tickets(app, 5, 1, args.teams, keyword)
                await app.jobs.drain(max_rounds=10_000)
                started = time.perf_counter()
                await create_tickets(app, args.tickets, args.concurrency, args.teams, keyword)
                created = time.perf_counter()
                jobs = await app.jobs.drain(max_rounds=100_000)
                drained = time.perf_counter()
                fired = 0
                if with_rules:
                    fired = int(await app.db.fetchval("SELECT COUNT(*) AS n FROM automation_fired"))
            finally:
                await app.stop()
    n = args.tickets
    return Run(
        create_ms=(created - started) * 1000 / n,
        worker_ms=(drained - created) * 1000 / n,
        jobs=jobs,
        fired=fired,
    )


class _SqliteDb:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory()

    async def __aenter__(self) -> str:
        return f"sqlite:///{self._dir.name}/bench.db"

    async def __aexit__(self, *exc: object) -> None:
        self._dir.cleanup()


class _PostgresDb:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.schema = f"bench_auto_{uuid.uuid4().hex[:10]}"

    async def _run(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def __aenter__(self) -> str:
        await self._run(f"CREATE SCHEMA {self.schema}")
        sep = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{sep}search_path={self.schema}"

    async def __aexit__(self, *exc: object) -> None:
        await self._run(f"DROP SCHEMA {self.schema} CASCADE")


async def main(args: argparse.Namespace) -> None:
    console = Console()
    table = Table(
        title=f"Routing + automation per ticket: {args.agents} agents in {args.teams} teams, "
        f"{args.rules} rules, {args.tickets} tickets, concurrency {args.concurrency}, "
        f"median of {args.runs}"
    )
    for column in ("engine", "configuration", "create ms", "worker ms", "total ms", "added ms"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    table.add_column("jobs", justify="right")
    table.add_column("fired", justify="right")
    for engine in args.engines.split(","):
        results: dict[str, Run] = {}
        for config in CONFIGS:
            name = config[0]
            runs = []
            for _ in range(args.runs):

                def make_db(engine: str = engine) -> Any:
                    return _SqliteDb() if engine == "sqlite" else _PostgresDb(args.pg_dsn)

                runs.append(await run_config(config, args, make_db))
                console.log(f"{engine} {name}: {runs[-1].total_ms:.3f} ms/ticket")
            results[name] = sorted(runs, key=lambda r: r.total_ms)[len(runs) // 2]
        base = results["baseline"].total_ms
        for name, run in results.items():
            added = "" if name == "baseline" else f"{run.total_ms - base:+.3f}"
            table.add_row(
                engine,
                name,
                f"{run.create_ms:.3f}",
                f"{run.worker_ms:.3f}",
                f"{run.total_ms:.3f}",
                added,
                str(run.jobs),
                str(run.fired),
            )
    console.print(table)
    console.print(
        "added ms = total minus baseline: what routing (and automation) cost per ticket. "
        "Target (issue #4): under 2 ms for routing + automation. "
        f"Python {sys.version.split()[0]}; figures drift between runs on a shared machine."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-dsn", default=DEFAULT_DSN)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    asyncio.run(main(parse_args()))

"""API benchmark of TicketCore against a real ``ticketcore serve`` process (bench/workload.md).

    python bench/api_bench.py                      # full run: both engines, 2,000 + 1,000,000
    python bench/api_bench.py --quick              # a smoke run in about a minute
    python bench/api_bench.py --engines sqlite --preload 100000 --runs 1

Per engine: phases create / reply / list / detail / filtered lists on a fresh database per run
and concurrency, then read phases again after a bulk preload of each size (topped up in
place). Prints a rich table per configuration and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import importlib.metadata
import math
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apibench import workload
from apibench.preload import preload, ticket_id_range
from apibench.rawhttp import RawClient
from apibench.report import (
    Configuration,
    print_configuration,
    target_checks,
    write_json,
)
from apibench.runner import (
    Outcome,
    cpu_count,
    host_busy_pct,
    host_cpu_times,
    open_clients,
    run_phase,
    summarise,
)
from apibench.server import (
    ServerProcess,
    Target,
    check_postgres,
    create_target,
    drop_target,
    seed_target,
)
from rich.console import Console

HERE = Path(__file__).resolve().parent
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Sizes:
    """Default sizes of a run: the full workload or --quick."""

    creates: int
    replies: int
    reads: int
    preload: str
    runs: int


FULL = Sizes(creates=2000, replies=500, reads=500, preload="100000,1000000", runs=3)
QUICK = Sizes(creates=200, replies=50, reads=50, preload="10000", runs=1)
BUSY_WARNING_PCT = 15.0
PACKAGES = ("ticketcore", "litestar", "piccolo", "uvicorn", "httpx", "asyncpg", "aiosqlite")


@dataclass
class Options:
    """The resolved command-line options."""

    engines: list[str]
    concurrency: list[int]
    runs: int
    creates: int
    replies: int
    reads: int
    preload: list[int]
    parts: list[str]
    seed: int
    warmup: int
    phase_timeout: float
    pg_dsn: str
    out: Path
    workdir: Path
    keep: bool
    uvloop: bool


def _int_list(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip() and x.strip() != "0"]


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engines", default="sqlite,postgres", help="sqlite,postgres (default both)")
    p.add_argument("--concurrency", default="1,16", help="closed-loop workers (default 1,16)")
    p.add_argument("--runs", type=int, help="runs per configuration, medians (default 3)")
    p.add_argument("--creates", type=int, help="N tickets created (default 2000)")
    p.add_argument("--replies", type=int, help="M public messages (default 500)")
    p.add_argument("--reads", type=int, help="K requests per read phase (default 500)")
    p.add_argument(
        "--preload",
        help="ticket counts preloaded, topped up in order (default 100000,1000000; 0 for none)",
    )
    p.add_argument("--parts", default="api,preload", help="api and/or preload (default both)")
    p.add_argument(
        "--quick", action="store_true", help="N=200 M=50 K=50, preload 10000, 1 run (smoke test)"
    )
    p.add_argument("--seed", type=int, default=1, help="RNG seed of the workload (default 1)")
    p.add_argument("--warmup", type=int, default=20, help="untimed list requests per server start")
    p.add_argument("--phase-timeout", type=float, default=300.0, help="seconds per phase at most")
    p.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"default {DEFAULT_PG_DSN}")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/api_bench-*.json)")
    p.add_argument("--workdir", type=Path, help="where databases and logs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (databases, logs)")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop in the client")
    return p


def resolve_options(args: argparse.Namespace) -> Options:
    """Fill in defaults (full or --quick) and validate."""
    base = QUICK if args.quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    engines = _str_list(args.engines)
    parts = _str_list(args.parts)
    unknown = [e for e in engines if e not in ("sqlite", "postgres")]
    unknown += [p for p in parts if p not in ("api", "preload")]
    if unknown:
        raise SystemExit(f"api_bench: unknown engine or part: {', '.join(unknown)}")
    return Options(
        engines=engines,
        concurrency=_int_list(args.concurrency),
        runs=args.runs or base.runs,
        creates=args.creates or base.creates,
        replies=args.replies if args.replies is not None else base.replies,
        reads=args.reads or base.reads,
        preload=_int_list(args.preload if args.preload is not None else base.preload),
        parts=parts,
        seed=args.seed,
        warmup=args.warmup,
        phase_timeout=args.phase_timeout,
        pg_dsn=args.pg_dsn,
        out=args.out or HERE / "results" / f"api_bench-{stamp}.json",
        workdir=args.workdir or Path(tempfile.mkdtemp(prefix="ticketcore-bench-")),
        keep=args.keep,
        uvloop=not args.no_uvloop,
    )


class Bench:
    """Runs every configuration, printing tables and rewriting the JSON as it goes."""

    def __init__(self, opts: Options, console: Console, progress: Console) -> None:
        self.opts = opts
        self.console = console
        self.progress = progress
        self.configs: list[Configuration] = []
        self.meta: dict[str, Any] = {}

    def log(self, message: str) -> None:
        """A progress line (stderr)."""
        self.progress.log(message)

    def finish_config(self, config: Configuration) -> None:
        """Print a finished configuration and save everything so far."""
        self.configs.append(config)
        print_configuration(self.console, config, self.opts.runs)
        write_json(self.opts.out, self.meta, self.configs)

    async def _phase(
        self,
        clients: list[RawClient],
        name: str,
        calls: Sequence[workload.Call],
        c: int,
        server: ServerProcess,
    ) -> tuple[Outcome, dict[str, Any]]:
        outcome = await run_phase(clients, name, calls, c, self.opts.phase_timeout, server.pid)
        summary = summarise(outcome)
        self.log(
            f"  {name:<18} C={c:<3} ok={summary['ok']:<5} err={summary['errors']:<4} "
            f"{summary['rps']:8.0f} req/s  p95 {summary['p95_ms']:7.1f} ms"
        )
        return outcome, summary

    async def _warmup(self, clients: list[RawClient], c: int) -> None:
        if self.opts.warmup > 0:
            await run_phase(clients, "warmup", workload.list_calls(self.opts.warmup), c, 60.0)

    # --- part 1: tickets created through the API --------------------------------------------

    async def api_part(self, engine: str) -> None:
        """N creates, M replies, K of each read, per run and concurrency, fresh databases."""
        o = self.opts
        config = Configuration(
            engine,
            f"{o.creates:,} tickets created through the API "
            f"(N={o.creates}, M={o.replies}, K={o.reads})",
            o.creates,
        )
        for run in range(o.runs):
            for c in o.concurrency:
                self.log(f"{engine}: API run {run + 1}/{o.runs}, concurrency {c}")
                workdir = o.workdir / f"{engine}-api-r{run}-c{c}"
                work = functools.partial(self._api_phases, c=c, run=run, config=config)
                await self._with_fresh_server(engine, workdir, work, config)
        self.finish_config(config)

    async def _with_fresh_server(
        self,
        engine: str,
        workdir: Path,
        work: Callable[[Target, ServerProcess], Coroutine[Any, Any, None]],
        config: Configuration,
    ) -> None:
        target = await create_target(engine, workdir, self.opts.pg_dsn)
        try:
            await seed_target(target)
            server = ServerProcess(target)
            await server.start()
            try:
                await work(target, server)
            finally:
                server.stop()
                config.add_log_problems(server.log_problems())
        finally:
            await drop_target(target)

    async def _api_phases(
        self, target: Target, server: ServerProcess, c: int, run: int, config: Configuration
    ) -> None:
        o = self.opts
        rng = random.Random(f"{o.seed}-{run}-{c}")
        async with open_clients(server.base_url, target.token, c) as clients:
            await self._warmup(clients, c)
            calls = workload.create_calls(rng, o.creates, target.team_ids[0])
            created, summary = await self._phase(clients, "create", calls, c, server)
            config.add(summary)
            ids = created.created_ids or [1]
            if o.replies:
                calls = workload.reply_calls(rng, o.replies, ids)
                config.add((await self._phase(clients, "reply", calls, c, server))[1])
            for phase in workload.READ_PHASES:
                calls = workload.read_calls(phase, rng, o.reads, ids, target.team_ids[:1])
                config.add((await self._phase(clients, phase, calls, c, server))[1])

    # --- part 2: preloaded tickets ----------------------------------------------------------

    async def preload_part(self, engine: str) -> None:
        """Preload each size in turn (topping up one database) and measure the reads."""
        target = await create_target(
            engine, self.opts.workdir / f"{engine}-preload", self.opts.pg_dsn
        )
        try:
            await seed_target(target)
            for size in sorted(self.opts.preload):
                await self._preload_size(target, size)
        finally:
            await drop_target(target)

    async def _preload_size(self, target: Target, size: int) -> None:
        o = self.opts
        self.log(f"{target.engine}: preloading up to {size:,} tickets")
        started = time.perf_counter()
        added = await preload(target, size, o.seed)
        took = time.perf_counter() - started
        low, high = await ticket_id_range(target)
        config = Configuration(target.engine, f"preload {size:,} tickets (K={o.reads})", size)
        config.notes.append(
            f"preloaded {added:,} rows in {took:.1f} s ({added / max(took, 1e-9):,.0f} rows/s, "
            "including indexes and ANALYZE); ids "
            f"{low}..{high}"
        )
        self.log(config.notes[-1])
        server = ServerProcess(target)
        await server.start()
        try:
            for run in range(o.runs):
                for c in o.concurrency:
                    self.log(f"{target.engine} @ {size:,}: run {run + 1}/{o.runs}, concurrency {c}")
                    await self._read_phases(target, server, c, run, config, range(low, high + 1))
        finally:
            server.stop()
        config.add_log_problems(server.log_problems())
        self.finish_config(config)

    async def _read_phases(
        self,
        target: Target,
        server: ServerProcess,
        c: int,
        run: int,
        config: Configuration,
        ids: Sequence[int],
    ) -> None:
        rng = random.Random(f"{self.opts.seed}-preload-{run}-{c}")
        async with open_clients(server.base_url, target.token, c) as clients:
            await self._warmup(clients, c)
            for phase in workload.READ_PHASES:
                calls = workload.read_calls(phase, rng, self.opts.reads, ids, target.team_ids)
                config.add((await self._phase(clients, phase, calls, c, server))[1])

    # --- everything -------------------------------------------------------------------------

    async def run(self) -> None:
        """Every part for every engine."""
        self.meta = await collect_meta(self.opts)
        for engine in self.opts.engines:
            if "api" in self.opts.parts:
                await self.api_part(engine)
            if "preload" in self.opts.parts and self.opts.preload:
                await self.preload_part(engine)


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()
    return ""


def git_state() -> dict[str, Any]:
    """The commit measured and the uncommitted changes to tracked files (with a hash of
    their diff), so a run on a working tree that was being edited can be told apart."""
    diff = _git("diff", "HEAD")
    return {
        "commit": _git("rev-parse", "HEAD") or None,
        "modified": _git("diff", "--name-only", "HEAD").splitlines(),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


async def _postgres_version(dsn: str) -> str | None:
    import asyncpg

    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    return None


async def machine_busy_pct(seconds: float = 3.0) -> float:
    """How busy the machine is before the benchmark starts (all cores, 0-100)."""
    before = host_cpu_times()
    await asyncio.sleep(seconds)
    return host_busy_pct(before, host_cpu_times())


async def collect_meta(opts: Options) -> dict[str, Any]:
    """What ran, where, with which versions, and how busy the machine was beforehand."""
    return {
        "machine_busy_pct_before": await machine_busy_pct(),
        "started_at": datetime.now(UTC).isoformat(),
        "argv": sys.argv,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "python": sys.version,
        "platform": platform.platform(),
        "cpus": cpu_count(),
        "git": git_state(),
        "versions": _versions(),
        "sqlite_version": sqlite3.sqlite_version,
        "postgres_version": (
            await _postgres_version(opts.pg_dsn) if "postgres" in opts.engines else None
        ),
        "event_loop": type(asyncio.get_running_loop()).__module__,
    }


def print_footer(console: Console, bench: Bench, elapsed: float) -> None:
    """Targets, the shared-CPU caveat, run time and where the JSON went."""
    checks = target_checks(bench.configs)
    if checks:
        console.print("[bold]Targets[/bold]")
        for line in checks:
            console.print(f"  {line}")
    git = bench.meta.get("git", {})
    console.print(
        f"\nCode measured: commit {str(git.get('commit'))[:12]}"
        + (
            f" plus uncommitted changes to {len(git['modified'])} file(s) "
            f"(diff sha256 {str(git.get('diff_sha256'))[:12]})"
            if git.get("modified")
            else " (clean tree)"
        )
    )
    if git and bench.meta.get("git_at_end") not in (None, git):
        console.print("WARNING: the working tree changed while the benchmark ran")
    busy = bench.meta.get("machine_busy_pct_before", math.nan)
    console.print(
        f"Before the run, other processes kept the machine {busy:.0f} % busy (all cores)"
        + (": the figures are depressed by that load" if busy > BUSY_WARNING_PCT else "")
    )
    loop = bench.meta.get("event_loop", "?")
    console.print(
        f"\nClient and server share this machine's {cpu_count()} CPU cores: the client "
        "(bench/apibench/rawhttp.py, a lean keep-alive HTTP/1.1 client; closed loop, "
        f"{loop} event loop, one process), the server (one "
        "uvicorn process, --no-worker) and PostgreSQL compete for them, so the figures "
        "understate what the server alone could do."
    )
    console.print(f"Total run time: {elapsed / 60:.1f} min ({elapsed:.0f} s)")
    console.print(f"JSON results: {bench.opts.out}")


async def main_async(opts: Options, console: Console, progress: Console) -> int:
    """Check the engines, run the benchmark, print the footer."""
    if "postgres" in opts.engines:
        problem = await check_postgres(opts.pg_dsn)
        if problem:
            console.print(
                f"PostgreSQL at {opts.pg_dsn} is not usable ({problem}); "
                "pass --engines sqlite or --pg-dsn"
            )
            return 2
    started = time.perf_counter()
    bench = Bench(opts, console, progress)
    try:
        await bench.run()
    finally:
        elapsed = time.perf_counter() - started
        bench.meta["elapsed_s"] = elapsed
        bench.meta["git_at_end"] = git_state()
        if bench.configs:
            write_json(opts.out, bench.meta, bench.configs)
        print_footer(console, bench, elapsed)
    return 0


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, clean up the work dir."""
    opts = resolve_options(build_parser().parse_args(argv))
    width = None if sys.stdout.isatty() else 160
    console = Console(width=width)
    progress = Console(stderr=True, width=width)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(opts.uvloop)) as runner:
            return runner.run(main_async(opts, console, progress))
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        if opts.keep:
            console.print(f"work dir kept: {opts.workdir}")
        else:
            shutil.rmtree(opts.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

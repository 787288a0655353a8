"""Closed-loop load: C asyncio workers, one request in flight each, no think time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from apibench.rawhttp import RawClient, RawHTTPError, RawResponse
from apibench.workload import Call

MAX_ERROR_SAMPLES = 5
ERROR_BODY_CHARS = 400


@dataclass(slots=True)
class Outcome:
    """Raw result of one phase: per-request latencies and what went wrong."""

    phase: str
    concurrency: int
    planned: int
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    host_busy_pct: float = math.nan
    timed_out: bool = False

    def record_error(self, text: str) -> None:
        """Count an error and keep the first few distinct descriptions."""
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES and text not in self.error_samples:
            self.error_samples.append(text)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by a process (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def host_cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [float(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def host_busy_pct(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float:
    """How busy all cores together were between two readings, 0-100."""
    if before is None or after is None or after[1] <= before[1]:
        return math.nan
    return 100 * (after[0] - before[0]) / (after[1] - before[1])


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, linear interpolation between ranks."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_count() -> int:
    """Logical CPUs available to this process."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def other_cpu_pct(outcome: Outcome) -> float:
    """CPU used by every process but the client and the Python server (PostgreSQL, other
    work on the machine), in % of one core."""
    if outcome.wall_s <= 0 or outcome.server_cpu_s is None or math.isnan(outcome.host_busy_pct):
        return math.nan
    used = outcome.host_busy_pct * cpu_count()
    return max(used - 100 * (outcome.client_cpu_s + outcome.server_cpu_s) / outcome.wall_s, 0.0)


def summarise(outcome: Outcome) -> dict[str, Any]:
    """Per-phase figures: ok, errors, wall s, req/s (ok per wall second), latency in ms."""
    ordered = sorted(outcome.latencies_ms)
    count = len(ordered)
    wall = outcome.wall_s
    return {
        "phase": outcome.phase,
        "concurrency": outcome.concurrency,
        "planned": outcome.planned,
        "ok": outcome.ok,
        "errors": outcome.errors,
        "wall_s": wall,
        "rps": outcome.ok / wall if wall > 0 else 0.0,
        "mean_ms": sum(ordered) / count if count else math.nan,
        "p50_ms": percentile(ordered, 50),
        "p95_ms": percentile(ordered, 95),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1] if ordered else math.nan,
        "client_cpu_pct": 100 * outcome.client_cpu_s / wall if wall > 0 else math.nan,
        "server_cpu_pct": (
            100 * outcome.server_cpu_s / wall
            if wall > 0 and outcome.server_cpu_s is not None
            else math.nan
        ),
        "host_busy_pct": outcome.host_busy_pct,
        "other_cpu_pct": other_cpu_pct(outcome),
        "server_cpu_ms_per_ok": (
            1000 * outcome.server_cpu_s / outcome.ok
            if outcome.ok and outcome.server_cpu_s is not None
            else math.nan
        ),
        "timed_out": outcome.timed_out,
        "error_samples": outcome.error_samples,
    }


def _describe_error(call: Call, response: RawResponse) -> str:
    body = response.text[:ERROR_BODY_CHARS]
    return f"{call.method} {call.url} -> {response.status_code}: {body}"


async def _send(client: RawClient, call: Call) -> tuple[float, RawResponse | None, str]:
    """Send one request, reading the whole response; return (ms, response, error text)."""
    start = time.perf_counter()
    try:
        response = await client.request(call.method, call.url, json=call.body)
    except RawHTTPError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return elapsed, None, f"{call.method} {call.url} -> {type(exc).__name__}: {exc}"
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, response, ""


def _record(outcome: Outcome, call: Call, index: int, result: tuple[float, Any, str]) -> None:
    elapsed, response, error = result
    outcome.latencies_ms.append(elapsed)
    if response is None:
        outcome.record_error(error)
    elif response.status_code != call.expect:
        outcome.record_error(_describe_error(call, response))
    else:
        outcome.ok += 1
        if outcome.phase == "create":
            outcome.created_ids[index] = int(response.json()["id"])


async def run_phase(
    clients: Sequence[RawClient],
    phase: str,
    calls: Sequence[Call],
    concurrency: int,
    time_limit_s: float,
    server_pid: int | None = None,
) -> Outcome:
    """Run ``calls`` with ``concurrency`` closed-loop workers, worker ``i`` sending on
    ``clients[i]``; stop taking new calls at the time limit."""
    if len(clients) < concurrency:
        raise ValueError(f"{concurrency} workers need as many clients, got {len(clients)}")
    outcome = Outcome(phase=phase, concurrency=concurrency, planned=len(calls))
    if phase == "create":
        outcome.created_ids = [0] * len(calls)
    indexes = iter(range(len(calls)))  # shared by the workers: each takes the next call
    server_cpu_before = process_cpu_seconds(server_pid) if server_pid else None
    cpu_before = time.process_time()
    host_before = host_cpu_times()
    start = time.perf_counter()
    deadline = start + time_limit_s

    async def worker(client: RawClient) -> None:
        for index in indexes:  # bounded by len(calls)
            if time.perf_counter() > deadline:
                outcome.timed_out = True
                return
            call = calls[index]
            _record(outcome, call, index, await _send(client, call))

    await asyncio.gather(*(worker(client) for client in clients[:concurrency]))
    outcome.wall_s = time.perf_counter() - start
    outcome.client_cpu_s = time.process_time() - cpu_before
    outcome.host_busy_pct = host_busy_pct(host_before, host_cpu_times())
    if server_cpu_before is not None and server_pid:
        after = process_cpu_seconds(server_pid)
        outcome.server_cpu_s = after - server_cpu_before if after is not None else None
    outcome.created_ids = [i for i in outcome.created_ids if i]
    return outcome


@contextlib.asynccontextmanager
async def open_clients(base_url: str, token: str, count: int) -> AsyncIterator[list[RawClient]]:
    """One keep-alive connection per worker, closed on exit.

    The clients are the lean ones of ``rawhttp``: httpx cost about as much CPU per request
    as the server, and client and server share this machine's two cores.
    """
    clients = [RawClient(base_url, {"Authorization": f"Bearer {token}"}) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()

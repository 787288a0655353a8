"""Medians over runs, rich tables and the JSON results file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from apibench.workload import READ_PHASES, WRITE_PHASES

PHASE_ORDER = (*WRITE_PHASES, *READ_PHASES)
MEDIAN_FIELDS = (
    "ok",
    "wall_s",
    "rps",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "client_cpu_pct",
    "server_cpu_pct",
    "server_cpu_ms_per_ok",
    "host_busy_pct",
    "other_cpu_pct",
)
CREATE_TARGET_RPS = 1000.0
READ_TARGET_P95_MS = 20.0


@dataclass
class Configuration:
    """One table: an engine and a data set, with every run of every (phase, concurrency)."""

    engine: str
    dataset: str
    tickets: int
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    server_log_problems: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_log_problems(self, problems: dict[str, int]) -> None:
        """Add the error counts of one server's log."""
        for text, count in problems.items():
            self.server_log_problems[text] = self.server_log_problems.get(text, 0) + count

    def add(self, summary: dict[str, Any]) -> None:
        """Record the summary of one phase run."""
        key = f"{summary['phase']}@{summary['concurrency']}"
        self.runs.setdefault(key, []).append(summary)

    def medians(self) -> list[dict[str, Any]]:
        """One row per (phase, concurrency): medians over runs, errors summed."""
        rows = [median_row(runs) for runs in self.runs.values()]
        return sorted(rows, key=lambda r: (PHASE_ORDER.index(r["phase"]), r["concurrency"]))

    def to_json(self) -> dict[str, Any]:
        """Everything measured, raw runs included."""
        return {
            "engine": self.engine,
            "dataset": self.dataset,
            "tickets": self.tickets,
            "medians": self.medians(),
            "runs": self.runs,
            "server_log_problems": self.server_log_problems,
            "notes": self.notes,
        }


def _median(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the runs; errors are the total over the runs."""
    row: dict[str, Any] = {
        "phase": runs[0]["phase"],
        "concurrency": runs[0]["concurrency"],
        "runs": len(runs),
        "errors_total": sum(r["errors"] for r in runs),
        "timed_out_runs": sum(1 for r in runs if r["timed_out"]),
        "error_samples": sorted({s for r in runs for s in r["error_samples"]})[:5],
    }
    for name in MEDIAN_FIELDS:
        row[name] = _median(r[name] for r in runs)
    return row


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def render_table(config: Configuration, runs: int) -> Table:
    """A rich table of the medians of one configuration."""
    table = Table(
        title=f"{config.engine} - {config.dataset}",
        caption=(
            f"medians of {runs} run(s); err = total over runs; latency in ms, client side, "
            "whole response read; req/s = ok / wall; CPU % of one core (cli = this process, "
            "srv = the Python server process, not PostgreSQL); srv ms/req = server CPU ms per "
            "ok request; other = every other process (PostgreSQL, anything else running), % of "
            "one core; host busy = all cores together, 0-100"
        ),
    )
    for name in ("phase", "C"):
        table.add_column(name)
    for name in (
        "ok",
        "err",
        "wall s",
        "req/s",
        "mean",
        "p50",
        "p95",
        "p99",
        "max",
        "cli CPU%",
        "srv CPU%",
        "srv ms/req",
        "other CPU%",
        "host busy%",
    ):
        table.add_column(name, justify="right")
    for row in config.medians():
        table.add_row(
            row["phase"],
            str(row["concurrency"]),
            f"{row['ok']:.0f}",
            str(row["errors_total"]) + ("*" if row["timed_out_runs"] else ""),
            f"{row['wall_s']:.2f}",
            f"{row['rps']:.0f}",
            *(_ms(row[k]) for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")),
            _pct(row["client_cpu_pct"]),
            _pct(row["server_cpu_pct"]),
            _ms(row["server_cpu_ms_per_ok"]),
            _pct(row["other_cpu_pct"]),
            _pct(row["host_busy_pct"]),
        )
    return table


def print_configuration(console: Console, config: Configuration, runs: int) -> None:
    """The table, then any error responses and server log problems."""
    console.print(render_table(config, runs))
    for note in config.notes:
        console.print(f"  {note}")
    for row in config.medians():
        if row["timed_out_runs"]:
            console.print(
                f"  * {row['phase']} C={row['concurrency']}: stopped at the phase time limit "
                f"in {row['timed_out_runs']} run(s)"
            )
        for sample in row["error_samples"]:
            console.print(f"  error sample ({row['phase']} C={row['concurrency']}): {sample}")
    for text, count in list(config.server_log_problems.items())[:10]:
        console.print(f"  server log: {count} x {text}")
    console.print()


def target_checks(configs: list[Configuration]) -> list[str]:
    """The project's targets, each with the measured figure and ok / MISSED."""
    lines: list[str] = []
    for config in configs:
        for row in config.medians():
            if row["phase"] == "create" and row["concurrency"] > 1:
                verdict = "ok" if row["rps"] >= CREATE_TARGET_RPS else "MISSED"
                lines.append(
                    f"{config.engine}: create C={row['concurrency']} {row['rps']:.0f} req/s "
                    f"(target >= {CREATE_TARGET_RPS:.0f}): {verdict}"
                )
    largest = _largest_preloads(configs)
    for config in largest:
        for row in config.medians():
            verdict = "ok" if row["p95_ms"] < READ_TARGET_P95_MS else "MISSED"
            lines.append(
                f"{config.engine} at {config.tickets:,} tickets: {row['phase']} "
                f"C={row['concurrency']} p95 {row['p95_ms']:.1f} ms "
                f"(target < {READ_TARGET_P95_MS:.0f}): {verdict}"
            )
    return lines


def _largest_preloads(configs: list[Configuration]) -> list[Configuration]:
    best: dict[str, Configuration] = {}
    for config in configs:
        if config.dataset.startswith("preload") and (
            config.engine not in best or config.tickets > best[config.engine].tickets
        ):
            best[config.engine] = config
    return list(best.values())


def _clean(value: Any) -> Any:
    """NaN becomes null so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, meta: dict[str, Any], configs: list[Configuration]) -> None:
    """Write (or rewrite) the results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "configurations": [c.to_json() for c in configs]}
    path.write_text(json.dumps(_clean(data), indent=2) + "\n", encoding="utf-8")

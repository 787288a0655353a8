"""E-mail intake benchmark: generated mail, the real-world corpus, and the ~1 MB mails.

    python bench/mail_bench.py                         # SQLite, 10,000 generated + corpus
    python bench/mail_bench.py --engines sqlite,postgres --runs 3
    python bench/mail_bench.py --messages 2000 --concurrency 1

One process, the e-mail channel's real intake (``MailIntake.ingest``: parse, screen, thread,
write, log, queue the acknowledgement) on a fresh database per engine and run; no HTTP or
SMTP in the loop (the SMTP server adds one socket round trip per mail). Phases:

* ``generated``: N mails made before timing: 80 % new requests from 500 senders (5 % with a
  small attachment, 10 % HTML-only), 15 % replies quoting an earlier Message-ID of the same
  sender, 5 % auto-replies and bounces;
* ``corpus``: every message of ``../shared/corpus/email/`` (644 real-world mails);
* ``large``: the corpus mails over 500 KB (six, 0.5-2.9 MB), fed ``--large-repeats`` rounds
  under new Message-IDs, sampling the process's resident memory after each round to show
  it stays flat (the first rounds warm the allocator up; later rounds must add nothing).

Prints a table (messages/s, outcomes, memory) per engine and run. The target in issue #3:
at least 500 messages/s on SQLite with one process, and memory flat on the large mails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ticketcore.app import App, create_helpdesk
from ticketcore.config import settings_from_mapping
from ticketcore.plugins.channels.email import channel_of
from ticketcore.plugins.channels.email.testing import corpus_dir

ROOT = Path(__file__).resolve().parents[1]
CORPUS = corpus_dir(ROOT)
ADDRESS = "support@bench.test"
WORDS = [
    "printer",
    "invoice",
    "password",
    "login",
    "error",
    "refund",
    "server",
    "outage",
    "slow",
    "page",
    "report",
    "access",
    "account",
    "billing",
    "update",
    "crash",
    "email",
    "network",
    "vpn",
    "laptop",
    "screen",
    "order",
    "delivery",
]


@dataclass
class PhaseResult:
    """One timed phase."""

    name: str
    messages: int
    seconds: float
    outcomes: Counter[str]
    rss_mb: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _mail(
    rng: random.Random,
    i: int,
    sender: str,
    *,
    in_reply_to: str | None = None,
    html_only: bool = False,
    attachment: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    message = EmailMessage()
    message_id = f"gen-{i}-{uuid.uuid4().hex[:12]}@customer.test"
    message["From"] = f"Customer {sender.split('@')[0]} <{sender}>"
    message["To"] = ADDRESS
    words = " ".join(rng.choice(WORDS) for _ in range(6))
    message["Subject"] = f"Re: Request {i}: {words}" if in_reply_to else f"Request {i}: {words}"
    message["Date"] = format_datetime(datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i))
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        message["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        message[name] = value
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    if html_only:
        message.set_content(f"<html><body><p>{body}</p><p>Thanks</p></body></html>", subtype="html")
    else:
        message.set_content(body)
    if attachment:
        message.add_attachment(
            rng.randbytes(2048), maintype="application", subtype="pdf", filename=f"scan-{i}.pdf"
        )
    return message_id, message.as_bytes()


def generate(count: int, seed: int = 7) -> list[bytes]:
    """The generated mix (see the module docstring), deterministic for a seed."""
    rng = random.Random(seed)
    senders = [f"customer{n}@customer.test" for n in range(500)]
    sent: dict[str, list[str]] = {}
    mails: list[bytes] = []
    for i in range(count):
        sender = rng.choice(senders)
        roll = rng.random()
        if roll < 0.15 and sent.get(sender):
            message_id, raw = _mail(rng, i, sender, in_reply_to=rng.choice(sent[sender]))
        elif roll < 0.20:
            message_id, raw = _mail(
                rng, i, sender, headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
            )
        else:
            message_id, raw = _mail(
                rng, i, sender, html_only=rng.random() < 0.10, attachment=rng.random() < 0.05
            )
        sent.setdefault(sender, []).append(message_id)
        mails.append(raw)
    return mails


def corpus_mails() -> list[bytes]:
    """Every message file of the corpus (labels.csv names them)."""
    import csv

    with open(CORPUS / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(CORPUS / row["path"]).read_bytes() for row in rows]


def large_mails(min_bytes: int = 500_000) -> list[bytes]:
    """The corpus mails of at least ``min_bytes``."""
    return [raw for raw in corpus_mails() if len(raw) >= min_bytes]


async def run_phase(
    app: App, name: str, mails: list[bytes], concurrency: int, sample_every: int = 0
) -> PhaseResult:
    """Ingest ``mails`` with ``concurrency`` ingests in flight; time the whole phase. With
    ``sample_every``, the resident memory is sampled after every that many mails."""
    channel = channel_of(app)
    outcomes: Counter[str] = Counter()
    samples: list[float] = []
    queue = list(reversed(mails))
    done = [0]

    async def worker() -> None:
        while queue:
            raw = queue.pop()
            try:
                result = await channel.ingest(raw, source=f"bench:{name}")
                outcomes[result.outcome] += 1
            except Exception as exc:  # counted, not hidden: a failure is a finding
                outcomes[f"error:{type(exc).__name__}"] += 1
            done[0] += 1
            if sample_every and done[0] % sample_every == 0:
                samples.append(rss_mb())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return PhaseResult(name, len(mails), seconds, outcomes, samples)


def with_new_message_id(raw: bytes, n: int) -> bytes:
    """The same mail under a Message-ID of its own (a new header line on top wins)."""
    return f"Message-ID: <large-{n}-{uuid.uuid4().hex[:8]}@bench.test>\r\n".encode() + raw


async def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> list[PhaseResult]:
    """One run on one engine: a fresh database, every phase."""
    schema = None
    if engine == "sqlite":
        url = f"sqlite:///{workdir / f'mail-{uuid.uuid4().hex[:6]}.db'}"
    else:
        import asyncpg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(args.pg_dsn)
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.close()
        sep = "&" if "?" in args.pg_dsn else "?"
        url = f"{args.pg_dsn}{sep}search_path={schema}"
    settings = settings_from_mapping(
        {
            "database": {"url": url},
            "storage_dir": str(workdir / f"files-{uuid.uuid4().hex[:6]}"),
            "plugins": {"channels": ["email"]},
            "plugin": {"channels": {"email": {"addresses": {ADDRESS: ""}, "smtp": {"port": 9}}}},
        },
        env={},
    )
    app = create_helpdesk(settings)
    await app.start()
    try:
        generated = generate(args.messages)
        results = [await run_phase(app, "generated", generated, args.concurrency)]
        del generated
        if CORPUS.exists():
            results.append(await run_phase(app, "corpus", corpus_mails(), args.concurrency))
            large = large_mails()
            repeated = [
                with_new_message_id(raw, n) for n in range(args.large_repeats) for raw in large
            ]
            results.append(await run_phase(app, "large", repeated, args.concurrency, len(large)))
        return results
    finally:
        await app.stop()
        if schema:
            import asyncpg

            conn = await asyncpg.connect(args.pg_dsn)
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()


def print_results(console: Console, engine: str, run: int, results: list[PhaseResult]) -> None:
    """One table per engine and run."""
    table = Table(title=f"e-mail intake, {engine}, run {run}")
    for column in ("phase", "messages", "seconds", "messages/s", "outcomes", "RSS MB"):
        table.add_column(column, justify="right" if column != "outcomes" else "left")
    for r in results:
        memory = ""
        if r.rss_mb:
            # After each round of the large mails: flat means the last rounds add nothing.
            rounds = len(r.rss_mb)
            memory = (
                f"round 1 {r.rss_mb[0]:.0f}, round {rounds // 2} {r.rss_mb[rounds // 2 - 1]:.0f}, "
                f"round {rounds} {r.rss_mb[-1]:.0f} (max {max(r.rss_mb):.0f})"
            )
        table.add_row(
            r.name,
            str(r.messages),
            f"{r.seconds:.2f}",
            f"{r.rate:.0f}",
            ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items())),
            memory,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite", help="sqlite,postgres")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--large-repeats", type=int, default=20)
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    console = Console()
    console.print(
        f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; "
        f"{args.messages} generated mails, concurrency {args.concurrency}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="mail-bench-"))
    try:
        for engine in args.engines.split(","):
            for run in range(1, args.runs + 1):
                results = asyncio.run(run_engine(engine, args, workdir))
                print_results(console, engine, run, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"peak RSS of the process: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

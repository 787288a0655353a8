"""Every message of the real-world corpus (``../shared/corpus/email/``, 644 mails from other
projects' test suites) goes through the e-mail channel's intake, on both engines: no
exception, nothing lost, and each ends in the outcome its ``labels.csv`` row names.

Labels the screening test disagrees with (header heuristics only, each argued there in
``DISAGREE``) are held to our reading instead. Run with ``-s`` to see the counts table.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from test_email_screen import DISAGREE

from ticketcore.app import App
from ticketcore.errors import ValidationFailed
from ticketcore.plugins.channels.email import channel_of
from ticketcore.plugins.channels.email.parse import parse_mail
from ticketcore.plugins.channels.email.screen import MailKind
from ticketcore.plugins.channels.email.testing import corpus_dir
from ticketcore.services.directory import normalise_email

HelpdeskFactory = Callable[..., Awaitable[App]]
CORPUS = corpus_dir(Path(__file__).resolve().parents[1])

#: The outcomes each label allows. "thread" of none-or-thread is our "recorded": a system
#: note on the ticket of the message we sent (never a reopen, never a reply).
ALLOWED = {
    "new": {"created"},
    "thread-if-known-else-new": {"created", "threaded"},
    "none-or-thread": {"dropped", "recorded"},
    "none": {"dropped"},
    "policy": {"dropped"},  # the default bulk_policy "ignore"
}


def labels() -> list[dict[str, str]]:
    if not CORPUS.exists():
        pytest.skip(f"the mail corpus is not at {CORPUS}")
    with open(CORPUS / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def expected_outcomes(row: dict[str, str]) -> set[str]:
    override = DISAGREE.get(row["path"])
    if override is not None:
        return {"created"} if override[0] is MailKind.NORMAL else {"dropped", "recorded"}
    return ALLOWED[row["expect_ticket"]]


async def test_every_corpus_mail_ends_in_its_labelled_outcome(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    rows = labels()
    app = await helpdesk_factory(
        plugins={"channels": ["email"]},
        plugin={
            "channels": {"email": {"addresses": {"support@help.test": ""}, "smtp": {"port": 9}}}
        },
    )
    channel = channel_of(app)
    counts: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    first_outcome: dict[str, str] = {}  # dedupe key -> outcome, to tell a copy from a loss
    new_tickets: set[int] = set()
    for row in rows:
        raw = (CORPUS / row["path"]).read_bytes()
        try:
            result = await channel.ingest(raw, source=row["path"])
        except Exception as exc:  # a crash is a finding: report every one
            problems.append(f"{row['path']}: {type(exc).__name__}: {exc}")
            continue
        outcome = result.outcome
        if outcome == "duplicate":
            # The corpus holds the same mail twice: the copy ends where the first one did.
            outcome = first_outcome.get(result.dedupe_key, outcome)
        else:
            first_outcome.setdefault(result.dedupe_key, outcome)
        counts[(row["category"], result.outcome)] += 1
        if outcome not in expected_outcomes(row):
            problems.append(
                f"{row['path']} [{row['category']}, {row['expect_ticket']}]: {result.outcome} "
                f"({result.kind}: {result.reason})"
            )
        if result.outcome == "created" and result.ticket_id is not None:
            new_tickets.add(result.ticket_id)
            problems += await _check_preserved(app, row["path"], raw, result.ticket_id)

    _print_counts(counts)
    assert not problems, "\n".join(problems)
    # Nothing but a new request is ever acknowledged.
    acks = await app.db.fetch("SELECT payload FROM job WHERE kind = 'email.acknowledge'")
    acked = {json.loads(a["payload"])["ticket_id"] for a in acks}
    assert acked <= new_tickets
    assert sum(counts.values()) == len(rows)


async def _check_preserved(app: App, path: str, raw: bytes, ticket_id: int) -> list[str]:
    """Sender, subject, body and attachments of a new ticket are those of the mail."""
    mail = parse_mail(raw)
    limits = app.settings.limits
    [ticket] = await app.db.fetch(
        "SELECT t.subject, c.email FROM ticket t JOIN contact c ON c.id = t.requester "
        "WHERE t.id = {}",
        ticket_id,
    )
    [entry] = await app.db.fetch(
        "SELECT id, body_text FROM entry WHERE ticket = {} ORDER BY id LIMIT 1", ticket_id
    )
    files = await app.db.fetch("SELECT filename FROM attachment WHERE entry = {}", entry["id"])
    found: list[str] = []
    subject = " ".join(mail.subject.split())[: limits.max_subject_chars] or "(no subject)"
    if ticket["subject"] != subject:
        found.append(f"{path}: subject {ticket['subject']!r} != {subject!r}")
    if _usable(mail.sender_email) and ticket["email"] != mail.sender_email:
        found.append(f"{path}: requester {ticket['email']} != sender {mail.sender_email}")
    kept = [a for a in mail.attachments if len(a.data) <= limits.max_attachment_bytes]
    if len(files) != min(len(kept), limits.max_attachments_per_entry):
        found.append(f"{path}: {len(files)} attachments stored, the mail has {len(kept)}")
    text = mail.text.strip()
    if text and text[:200] not in entry["body_text"]:
        found.append(f"{path}: body not preserved")
    return found


def _usable(address: str | None) -> bool:
    try:
        return bool(address) and normalise_email(address or "") == address
    except ValidationFailed:
        return False


def _print_counts(counts: Counter[tuple[str, str]]) -> None:
    outcomes = sorted({o for _, o in counts})
    categories = sorted({c for c, _ in counts})
    print("\ncorpus: category x outcome")
    print(f"{'category':<18}" + "".join(f"{o:>11}" for o in outcomes))
    for category in categories:
        print(f"{category:<18}" + "".join(f"{counts[(category, o)]:>11}" for o in outcomes))
    print(
        f"{'total':<18}"
        + "".join(f"{sum(counts[(c, o)] for c in categories):>11}" for o in outcomes)
    )


def test_counts_cover_every_label() -> None:
    """The label file and the corpus agree: every row names a file that exists."""
    missing = [row["path"] for row in labels() if not (CORPUS / row["path"]).is_file()]
    assert missing == []

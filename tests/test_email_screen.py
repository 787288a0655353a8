"""Unit tests of the inbound-mail screener, and its verdict on every message of the corpus."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ticketcore.plugins.channels.email.ids import ticket_key_of
from ticketcore.plugins.channels.email.parse import parse_mail
from ticketcore.plugins.channels.email.screen import MailKind, ScreenResult, screen_mail
from ticketcore.plugins.channels.email.testing import corpus_dir

CORPUS = corpus_dir(Path(__file__).resolve().parents[1])

OWN_ID = "tc.0f8fad5b-d9cb-469f-a165-70867728950e.e7@help.example.org"


def is_ours(message_id: str) -> bool:
    return ticket_key_of(message_id) is not None


def screen(
    text: str,
    *,
    is_own_message_id: Callable[[str], bool] = lambda _id: False,
    loop_tokens: frozenset[str] = frozenset(),
) -> ScreenResult:
    """Parse and screen a test message written with LF line ends."""
    raw = text.lstrip("\n").replace("\n", "\r\n").encode()
    return screen_mail(
        parse_mail(raw), is_own_message_id=is_own_message_id, loop_tokens=loop_tokens
    )


# --- unit tests --------------------------------------------------------------------------------


def test_a_person_writing_creates_a_ticket() -> None:
    verdict = screen(
        """
From: Ann <ann@example.com>
To: support@help.example.org
Subject: Printer on fire
Message-ID: <x1@example.com>

Please help.
"""
    )
    assert verdict.kind is MailKind.NORMAL and verdict.creates_ticket
    assert verdict.original_message_ids == [] and verdict.failed_recipients == []


def test_loops_win_over_everything() -> None:
    looped = """
From: MAILER-DAEMON@example.net
X-Loop: TicketCore help.example.org
Subject: Undelivered Mail Returned to Sender

x
"""
    tokens = frozenset({"ticketcore help.example.org"})
    assert screen(looped, loop_tokens=tokens).kind is MailKind.LOOP
    assert screen(looped).kind is MailKind.BOUNCE  # unknown X-Loop value: not ours
    own = f"From: support@help.example.org\nMessage-ID: <{OWN_ID}>\n\nhello\n"
    verdict = screen(own, is_own_message_id=is_ours)
    assert verdict.kind is MailKind.LOOP and not verdict.creates_ticket


def test_a_failing_callback_does_not_break_screening() -> None:
    def broken(_id: str) -> bool:
        raise RuntimeError("database down")

    text = "From: a@example.com\nMessage-ID: <a@b>\nIn-Reply-To: <c@d>\n\nhi\n"
    assert screen(text, is_own_message_id=broken).kind is MailKind.NORMAL


def dsn(action: str, status: str, extra_headers: str = "") -> str:
    return f"""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@help.example.org
Subject: Delivery Status Notification
{extra_headers}Content-Type: multipart/report; report-type=delivery-status; boundary="d"

--d
Content-Type: text/plain

Report.
--d
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; Gone@Example.net
Action: {action}
Status: {status}
--d
Content-Type: text/rfc822-headers

From: support@help.example.org
Message-ID: <{OWN_ID}>
Subject: Your ticket
--d--
"""


def test_dsn_failure_is_a_bounce_about_our_message() -> None:
    verdict = screen(dsn("failed", "5.1.1", "Precedence: bulk\nAuto-Submitted: auto-replied\n"))
    assert verdict.kind is MailKind.BOUNCE
    assert verdict.reason == "delivery-status: 5.1.1 failed"
    assert verdict.failed_recipients == ["gone@example.net"]
    assert verdict.original_message_ids == [OWN_ID]
    assert not verdict.temporary and not verdict.creates_ticket


def test_dsn_delay_and_success() -> None:
    delayed = screen(dsn("delayed", "4.4.1"))
    assert delayed.kind is MailKind.BOUNCE_DELAYED and delayed.temporary
    assert delayed.original_message_ids == [OWN_ID]
    delivered = screen(dsn("delivered", "2.0.0"))
    assert delivered.kind is MailKind.DSN_DELIVERED and not delivered.temporary
    # "failed" with a 4.x.x status is a final failure: the MTA gave up.
    assert screen(dsn("failed", "4.4.7")).kind is MailKind.BOUNCE


def report(report_type: str, part_type: str, fields: str) -> str:
    return f"""
From: Someone <someone@example.com>
Subject: Report
Content-Type: multipart/report; report-type={report_type}; boundary="r"

--r
Content-Type: text/plain

Human part.
--r
Content-Type: {part_type}

{fields}
--r--
"""


def test_feedback_reports_and_read_receipts() -> None:
    arf = screen(report("feedback-report", "message/feedback-report", "Feedback-Type: abuse"))
    assert arf.kind is MailKind.FEEDBACK_REPORT and arf.reason == "feedback-report: abuse"
    mdn = screen(
        report(
            "disposition-notification",
            "message/disposition-notification",
            f"Original-Message-ID: <{OWN_ID}>\n"
            "Disposition: manual-action/MDN-sent-manually; displayed",
        )
    )
    assert mdn.kind is MailKind.READ_RECEIPT
    assert mdn.original_message_ids == [OWN_ID]


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "Precedence: auto_reply",
        "Subject: Automatic reply: Your ticket",
        "Subject: Out of Office: Your ticket",
        "Subject: Abwesenheitsnotiz: Ihr Ticket",
        "Subject: Réponse automatique : Votre ticket",
        "Subject: Respuesta automática: Su ticket",
        "Subject: 自動応答: チケット",
        "Subject: Out of Office",
        "Auto-Submitted: auto-replied\nPrecedence: bulk",
        "X-Auto-Response-Suppress: All\nReturn-Path: <>",
    ],
)
def test_auto_replies(headers: str) -> None:
    verdict = screen(
        f"From: Bob <bob@example.com>\n{headers}\nIn-Reply-To: <{OWN_ID}>\n\nI am away.\n"
    )
    assert verdict.kind is MailKind.AUTO_REPLY, verdict.reason
    assert verdict.original_message_ids == [OWN_ID]


@pytest.mark.parametrize(
    "subject",
    [
        "Auto: insurance claim for my car",
        "Absent: sick today",
        "Away: when is the office closed?",
        "Re: Out of office replies are not sent",
        "Question about automatic replies",
    ],
)
def test_subjects_people_write_are_not_auto_replies(subject: str) -> None:
    verdict = screen(f"From: Bob <bob@example.com>\nSubject: {subject}\n\nHello.\n")
    assert verdict.kind is MailKind.NORMAL


def test_auto_submitted_no_is_a_person() -> None:
    assert screen("From: a@example.com\nAuto-Submitted: no\n\nhi\n").kind is MailKind.NORMAL


@pytest.mark.parametrize(
    "header",
    [
        "Precedence: bulk",
        "Precedence: list",
        "Precedence: junk",
        "List-Id: <news.example.com>",
        "List-Unsubscribe: <mailto:leave@example.com>",
        "X-Mailing-List: news@example.com",
    ],
)
def test_bulk_and_list_mail(header: str) -> None:
    verdict = screen(f"From: news@example.com\n{header}\nSubject: Newsletter\n\nNews.\n")
    assert verdict.kind is MailKind.BULK and not verdict.creates_ticket


QMAIL = """
From: MAILER-DAEMON@mail.example.net
To: support@help.example.org
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.

<gone@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

From: support@help.example.org
Message-ID: <{own}>
Subject: Your ticket
"""


def test_non_standard_bounce_carries_the_original_id_and_recipient() -> None:
    verdict = screen(QMAIL.format(own=OWN_ID))
    assert verdict.kind is MailKind.BOUNCE
    assert verdict.original_message_ids == [OWN_ID]
    assert verdict.failed_recipients == ["gone@example.net"]


def test_bounce_from_headers_and_text_without_a_daemon_sender() -> None:
    verdict = screen(
        """
From: Mail Delivery System <mail@relay.example.net>
Return-Path: <>
X-Failed-Recipients: Gone@Example.net
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.
"""
    )
    assert verdict.kind is MailKind.BOUNCE
    assert verdict.failed_recipients == ["gone@example.net"]


def test_delay_warning_without_a_dsn_part() -> None:
    verdict = screen(
        """
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
Subject: Delivery Status Notification (Delay)

THIS IS A WARNING MESSAGE ONLY.
YOU DO NOT NEED TO RESEND YOUR MESSAGE.
Delivery to the following recipient has been delayed:
     slow@example.net
"""
    )
    assert verdict.kind is MailKind.BOUNCE_DELAYED and verdict.temporary
    assert verdict.failed_recipients == ["slow@example.net"]


def test_a_person_forwarding_a_bounce_wants_help() -> None:
    verdict = screen(
        """
From: Ann <ann@example.com>
Subject: Fwd: Undelivered Mail Returned to Sender

Why does this happen?

---------- Forwarded message ---------
From: Mail Delivery System <MAILER-DAEMON@example.net>
Subject: Undelivered Mail Returned to Sender

This is the mail system at host example.net.
I'm sorry to have to inform you that your message could not be delivered.
"""
    )
    assert verdict.kind is MailKind.NORMAL


def test_a_person_describing_a_delivery_problem() -> None:
    text = """
From: Ann <ann@example.com>
Subject: Mail delivery failed
In-Reply-To: <x@example.com>

Since Monday my mail could not be delivered: the server says user unknown, mailbox full.
"""
    assert screen(text).kind is MailKind.NORMAL


def test_a_person_answering_our_message_with_a_pasted_bounce() -> None:
    text = f"""
From: Ann <ann@example.com>
Subject: Re: [#12] Undelivered Mail Returned to Sender
In-Reply-To: <{OWN_ID}>

It still happens, see:
This is the mail system at host mx.example.com.
"""
    assert screen(text, is_own_message_id=is_ours).kind is MailKind.NORMAL
    # Without knowing that the referenced message is ours, it reads like a bounce.
    assert screen(text).kind is MailKind.BOUNCE


def test_a_person_at_a_postmaster_address() -> None:
    text = "From: Bob <postmaster@example.com>\nSubject: Please enjoy this link\n\nHere.\n"
    assert screen(text).kind is MailKind.NORMAL


def test_null_return_path_is_never_a_ticket() -> None:
    verdict = screen("From: robot@example.com\nReturn-Path: <>\nSubject: Hello\n\nhi\n")
    assert not verdict.creates_ticket


# --- corpus ------------------------------------------------------------------------------------

EXPECTED_KIND = {
    "normal": MailKind.NORMAL,
    "reply": MailKind.NORMAL,
    "bounce": MailKind.BOUNCE,
    "bounce-delayed": MailKind.BOUNCE_DELAYED,
    "auto-reply": MailKind.AUTO_REPLY,
    "feedback-report": MailKind.FEEDBACK_REPORT,
    "dsn-delivered": MailKind.DSN_DELIVERED,
    "read-receipt": MailKind.READ_RECEIPT,
    "bulk-or-list": MailKind.BULK,
}
FIRM_CREATES_TICKET = {
    "new": True,
    "thread-if-known-else-new": True,
    "none-or-thread": False,
    "none": False,
}

# Labels whose basis is "header heuristic" that we read differently after looking at the mail.
DISAGREE: dict[str, tuple[MailKind, str]] = {
    "flanker/mails/long-links.eml": (
        MailKind.NORMAL,
        "a Thunderbird mail from a person whose address is postmaster@; no bounce content at all",
    ),
    "flanker/mails/bounce/delayed-broken.eml": (
        MailKind.BOUNCE,
        "a bare message/delivery-status entity with Action: failed: a DSN fragment, not a person",
    ),
    "flanker/mails/bounce/no-mx.eml": (
        MailKind.BOUNCE_DELAYED,
        "DSN Action: delayed, Status 4.4.4, subject 'Delayed Mail (still being retried)'",
    ),
    "ruby_mail/mails/mime_emails/raw_email_with_mimepart_without_content_type.eml": (
        MailKind.BOUNCE_DELAYED,
        "DSN Action: delayed 4.5.0, Auto-Submitted: auto-generated (warning-timeout)",
    ),
    "ruby_mail/mails/multipart_report_emails/report_422.eml": (
        MailKind.BOUNCE_DELAYED,
        "DSN Action: delayed 4.2.2, 'Warning: could not send message for past 8 hours'",
    ),
    "mimekit/mails/disposition-notification.anonymized.eml": (
        MailKind.READ_RECEIPT,
        "its report part is message/disposition-notification (report-type anonymised): an MDN",
    ),
    "mimekit/mails/feedback-report.txt": (
        MailKind.FEEDBACK_REPORT,
        "starts with a UTF-8 BOM; once skipped, an ARF multipart/report feedback-report",
    ),
}

# Firm upstream labels that contradict another firm source and the screening contract.
# sisimai has no delay category: it files delay warnings as bounces (reason "expired").
# These five are delay notices by every signal (RFC 3464 "Action: delayed" with a 4.x.x
# status, or Gmail's "THIS IS A WARNING MESSAGE ONLY ... will be retried"), exactly like
# flufl.bounce's dsn_05.txt, which flufl labels bounce-delayed. The contract says
# delayed -> BOUNCE_DELAYED (temporary=True), so that is what they get; the product
# expectation ("none-or-thread": no ticket) holds either way. Needs the lead's sign-off.
FIRM_CONFLICTS: dict[str, tuple[MailKind, str]] = {
    path: (MailKind.BOUNCE_DELAYED, reason)
    for path, reason in {
        "sisimai/maildir/bsd/lhost-gmail-08.eml": "Gmail 'Delivery Status Notification (Delay)'",
        "sisimai/maildir/bsd/lhost-gmail-17.eml": "Gmail 'Delivery Status Notification (Delay)'",
        "sisimai/maildir/bsd/lhost-opensmtpd-06.eml": "OpenSMTPD DSN Action: delayed 4.4.7",
        "sisimai/maildir/bsd/lhost-opensmtpd-12.eml": "OpenSMTPD DSN Action: delayed 4.0.0",
        "sisimai/maildir/bsd/lhost-opensmtpd-16.eml": "OpenSMTPD DSN Action: delayed 4.4.7",
    }.items()
}


def _rows() -> list[dict[str, str]]:
    with (CORPUS / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.skipif(
    not (CORPUS / "labels.csv").is_file(),
    reason=f"e-mail corpus not found at {CORPUS} (expected ../shared/corpus/email)",
)
def test_corpus_verdicts() -> None:
    rows = _rows()
    assert len(rows) >= 600
    table: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    for row in rows:
        path, category, expect = row["path"], row["category"], row["expect_ticket"]
        firm = row["basis"] != "header heuristic"
        try:
            mail = parse_mail((CORPUS / path).read_bytes())
            verdict = screen_mail(mail)
        except Exception as exc:  # report every failing row, not just the first
            problems.append(f"{path}: raised {type(exc).__name__}: {exc}")
            continue
        table[(category, verdict.kind.value)] += 1
        expected = EXPECTED_KIND[category]
        if path in FIRM_CONFLICTS:
            expected = FIRM_CONFLICTS[path][0]
        elif path in DISAGREE:
            assert not firm, f"{path}: DISAGREE is only for header-heuristic labels"
            expected = DISAGREE[path][0]
        if verdict.kind is not expected:
            problems.append(
                f"{path} [{category}, {'firm' if firm else 'heuristic'}]: "
                f"{verdict.kind.value} ({verdict.reason}), expected {expected.value}"
            )
        # What matters for the product, checked on the label itself, overrides or not.
        if expect == "policy":
            if verdict.kind is not MailKind.BULK and path not in DISAGREE:
                problems.append(f"{path}: policy row screened as {verdict.kind.value}")
        elif path not in DISAGREE and verdict.creates_ticket != FIRM_CREATES_TICKET[expect]:
            problems.append(f"{path}: creates_ticket={verdict.creates_ticket}, label {expect}")
        if verdict.kind is MailKind.BOUNCE_DELAYED and not verdict.temporary:
            problems.append(f"{path}: delay warning not marked temporary")
        if verdict.kind in (MailKind.BOUNCE, MailKind.BOUNCE_DELAYED):
            missing = set(mail.embedded_message_ids) - set(verdict.original_message_ids)
            if missing:
                problems.append(f"{path}: original Message-IDs {missing} not reported")

    lines = ["", f"{'category':<16} {'our kind':<16} count"]
    lines += [f"{c:<16} {k:<16} {n:>5}" for (c, k), n in sorted(table.items())]
    lines.append(f"{'total':<33} {sum(table.values()):>5}")
    print("\n".join(lines))  # shown with -s, and under "PASSES" with -rA
    assert not problems, "\n".join(problems)


def test_overrides_name_real_rows_with_a_reason() -> None:
    if not (CORPUS / "labels.csv").is_file():
        pytest.skip(f"e-mail corpus not found at {CORPUS}")
    by_path = {row["path"]: row for row in _rows()}
    for path, (_kind, reason) in {**DISAGREE, **FIRM_CONFLICTS}.items():
        assert path in by_path, path
        assert reason
    for path in FIRM_CONFLICTS:
        assert by_path[path]["basis"] != "header heuristic"
        assert by_path[path]["expect_ticket"] == "none-or-thread"

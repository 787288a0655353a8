"""Reading raw mail from files: single messages, Maildirs and mbox files written with the
stdlib ``mailbox`` module, directory trees, and the real corpus in ``shared/corpus/email``.

Bytes must come back exactly as stored; a callback that fails for one message must be
reported without stopping the others; unusable paths raise ``MailSourceError``.
"""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest

from ticketcore.plugins.channels.email.sources import (
    IngestFailure,
    MailSourceError,
    ingest_path,
    iter_path,
)
from ticketcore.plugins.channels.email.testing import corpus_dir

CORPUS = corpus_dir(Path(__file__).resolve().parents[1])

#: Messages with what real mail has: CRLF and LF line ends, 8-bit bytes, a "From " body line.
MESSAGES = [
    b"From: Ann <ann@example.org>\r\nTo: support@example.org\r\nSubject: Printer\r\n\r\n"
    b"It is broken.\r\n",
    b"From: Bob <bob@example.org>\nSubject: =?utf-8?q?Caf=C3=A9?=\n"
    b"Content-Type: text/plain; charset=latin-1\nContent-Transfer-Encoding: 8bit\n\n"
    b"Caf\xe9 au lait\n",
    b"From: Cy <cy@example.org>\nSubject: Quote\n\nSee below.\nFrom the manual: reboot.\n",
]


class Collector:
    """An ingest callback that keeps what it gets and raises for messages containing
    ``fail_on``."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.fail_on = fail_on
        self.got: list[tuple[str, bytes]] = []

    async def __call__(self, raw: bytes, *, source: str) -> object:
        if self.fail_on is not None and self.fail_on in raw:
            raise RuntimeError(f"cannot store {source}")
        self.got.append((source, raw))
        return None


# --- single files ---------------------------------------------------------------------------


def test_a_single_message_file_comes_back_byte_for_byte(tmp_path: Path) -> None:
    for number, raw in enumerate(MESSAGES):
        path = tmp_path / f"m{number}.eml"
        path.write_bytes(raw)

        assert list(iter_path(path)) == [(f"file:{path}", raw)]


def test_a_nul_byte_in_a_body_does_not_make_a_message_binary(tmp_path: Path) -> None:
    raw = b"Subject: raw part\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\r\n"
    path = tmp_path / "binary-body.eml"
    path.write_bytes(raw)

    assert list(iter_path(path)) == [(f"file:{path}", raw)]


def test_a_file_without_extension_holding_one_message_is_read(tmp_path: Path) -> None:
    path = tmp_path / "message"
    path.write_bytes(MESSAGES[0])

    assert list(iter_path(path)) == [(f"file:{path}", MESSAGES[0])]


def test_a_from_header_with_spaces_is_not_taken_for_an_mbox_envelope(tmp_path: Path) -> None:
    raw = b"From  : John Doe <jdoe@example.org>\r\nSubject: odd\r\n\r\nbody\r\n"
    path = tmp_path / "odd.txt"
    path.write_bytes(raw)

    assert list(iter_path(path)) == [(f"file:{path}", raw)]


def test_an_eml_file_loses_its_envelope_line_and_is_never_split(tmp_path: Path) -> None:
    # A bounce quoting the original with its own envelope line: as an mbox this would be two
    # messages, but a .eml file holds one.
    body = b"Subject: bounce\n\nThe original:\n\nFrom someone@example.org Mon Jan 1 2024\nHi\n"
    path = tmp_path / "saved.eml"
    path.write_bytes(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + body)

    assert list(iter_path(path)) == [(f"file:{path}", body)]


# --- mbox -----------------------------------------------------------------------------------


def write_mbox(path: Path, messages: list[bytes]) -> None:
    """An mbox file written by the stdlib."""
    box = mailbox.mbox(path, create=True)
    try:
        for raw in messages:
            box.add(raw)
        box.flush()
    finally:
        box.close()


def test_an_mbox_gives_each_message_without_its_envelope_line(tmp_path: Path) -> None:
    path = tmp_path / "archive"
    write_mbox(path, MESSAGES)

    found = list(iter_path(path))

    assert [source for source, _ in found] == [f"mbox:{path}:{n}" for n in (1, 2, 3)]
    assert [raw for _, raw in found[:2]] == MESSAGES[:2]
    # mbox writers escape body lines starting with "From "; the escape is kept as stored
    # (mboxo quoting cannot be undone unambiguously).
    assert found[2][1] == MESSAGES[2].replace(b"\nFrom the", b"\n>From the")


# --- Maildir --------------------------------------------------------------------------------


def test_a_maildir_gives_new_and_cur_but_not_tmp(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    box = mailbox.Maildir(root, create=True)
    for raw in MESSAGES:
        box.add(raw)
    box.close()
    # A mail client read the first one: it moved to cur/ with an info suffix.
    first = sorted((root / "new").iterdir())[0]
    os.rename(first, root / "cur" / f"{first.name}:2,S")
    (root / "tmp" / "123.in-delivery").write_bytes(b"Subject: half written\n")

    found = list(iter_path(root))

    names = sorted(
        [(p.name, "cur") for p in (root / "cur").iterdir()]
        + [(p.name, "new") for p in (root / "new").iterdir()]
    )
    assert [source for source, _ in found] == [f"maildir:{root}/{sub}/{n}" for n, sub in names]
    assert sorted(raw for _, raw in found) == sorted(MESSAGES)


# --- directories ----------------------------------------------------------------------------


def test_a_directory_is_walked_recursively_in_order_skipping_hidden_entries(
    tmp_path: Path,
) -> None:
    root = tmp_path / "export"
    (root / "b").mkdir(parents=True)
    (root / "a.eml").write_bytes(MESSAGES[0])
    (root / "b" / "c.eml").write_bytes(MESSAGES[1])
    (root / "b" / ".draft.eml").write_bytes(MESSAGES[2])
    (root / ".git").mkdir()
    (root / ".git" / "x.eml").write_bytes(MESSAGES[2])
    write_mbox(root / "c.mbox", MESSAGES[:2])
    maildir = mailbox.Maildir(root / "d", create=True)
    maildir.add(MESSAGES[2])
    maildir.close()
    [maildir_file] = (root / "d" / "new").iterdir()

    found = list(iter_path(root))

    assert found == [
        (f"file:{root}/a.eml", MESSAGES[0]),
        (f"file:{root}/b/c.eml", MESSAGES[1]),
        (f"mbox:{root}/c.mbox:1", MESSAGES[0]),
        (f"mbox:{root}/c.mbox:2", MESSAGES[1]),
        (f"maildir:{maildir_file}", MESSAGES[2]),
    ]


async def test_files_that_are_not_mail_are_skipped_in_a_walk_and_reported(
    tmp_path: Path,
) -> None:
    (tmp_path / "1.eml").write_bytes(MESSAGES[0])
    (tmp_path / "2-empty.eml").write_bytes(b"\r\n  \n")
    (tmp_path / "3-outlook.msg").write_bytes(b"\xd0\xcf\x11\xe0\x00\x00\x00" * 10)
    (tmp_path / "4.eml").write_bytes(MESSAGES[1])
    collector = Collector()

    report = await ingest_path(tmp_path, collector)

    assert (report.handled, report.failed) == (2, 0)
    assert report.skipped == [
        IngestFailure(f"file:{tmp_path}/2-empty.eml", "empty file, not an e-mail message"),
        IngestFailure(
            f"file:{tmp_path}/3-outlook.msg", "binary file (NUL bytes), not an RFC 822 message"
        ),
    ]
    assert [raw for _, raw in collector.got] == MESSAGES[:2]
    assert [raw for _, raw in iter_path(tmp_path)] == MESSAGES[:2]


# --- unusable paths -------------------------------------------------------------------------


def test_unusable_paths_raise_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.eml"
    with pytest.raises(MailSourceError, match=f"{missing}: no such file or directory"):
        list(iter_path(missing))

    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    with pytest.raises(MailSourceError, match=f"{empty}: empty file"):
        list(iter_path(empty))

    binary = tmp_path / "picture.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(MailSourceError, match=f"{binary}: binary file"):
        list(iter_path(binary))

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(MailSourceError, match=f"{fifo}: not a regular file"):
        list(iter_path(fifo))

    assert issubclass(MailSourceError, ValueError)


async def test_ingest_path_raises_for_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(MailSourceError, match="no such file"):
        await ingest_path(tmp_path / "gone", Collector())


# --- ingest_path ----------------------------------------------------------------------------


async def test_a_failing_message_is_reported_and_the_others_still_go_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "box"
    write_mbox(path, MESSAGES)
    collector = Collector(fail_on=b"Subject: =?utf-8")

    report = await ingest_path(path, collector)

    assert (report.handled, report.failed, report.skipped) == (2, 1, [])
    assert report.failures == [
        IngestFailure(f"mbox:{path}:2", f"RuntimeError: cannot store mbox:{path}:2")
    ]
    assert [source for source, _ in collector.got] == [f"mbox:{path}:1", f"mbox:{path}:3"]


# --- the real corpus ------------------------------------------------------------------------


@pytest.fixture
def corpus() -> Path:
    """The shared e-mail corpus (read in place, never written)."""
    if not CORPUS.is_dir():
        pytest.skip(f"the e-mail corpus is not at {CORPUS}")
    return CORPUS


def test_corpus_files_come_back_exactly(corpus: Path) -> None:
    folder = corpus / "chatwoot"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))

    found = dict(iter_path(folder))

    # Every file, none lost; the ones holding mail come back byte for byte.
    assert sorted(found) == sorted(f"file:{p}" for p in files)
    for path in files:
        assert found[f"file:{path}"] == path.read_bytes(), path


def test_corpus_files_with_an_envelope_line(corpus: Path) -> None:
    # A .eml whose body quotes another message with its envelope line: still one message.
    bounce = corpus / "sisimai/maildir/bsd/rfc3464-28.eml"
    raw = bounce.read_bytes()
    [(source, message)] = list(iter_path(bounce))
    assert source == f"file:{bounce}"
    assert message == raw.split(b"\n", 1)[1]
    assert raw.count(b"\nFrom ") >= 1, "the trap is still in the corpus"

    # A .txt saved from an mbox: read as an mbox of one message.
    saved = corpus / "flufl_bounce/mails/dsn_01.txt"
    raw = saved.read_bytes()
    [(source, message)] = list(iter_path(saved))
    assert source == f"mbox:{saved}:1"
    assert raw.split(b"\n", 1)[1].startswith(message)
    assert message.startswith(b"Return-Path:") or b":" in message.split(b"\n", 1)[0]


def test_corpus_non_mail_is_refused_when_given_directly(corpus: Path) -> None:
    with pytest.raises(MailSourceError, match="binary file"):
        list(iter_path(corpus / "spamscope_mailparser/mails/mail_outlook_1"))
    with pytest.raises(MailSourceError, match="empty file"):
        list(iter_path(corpus / "flanker/mails/dkim/email.01"))


async def test_ingesting_the_whole_corpus_loses_nothing(corpus: Path) -> None:
    files = {
        p
        for p in corpus.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(corpus).parts)
    }
    collector = Collector(fail_on=b"X-Mailer: Apple Mail")

    report = await ingest_path(corpus, collector)

    def file_of(source: str) -> Path:
        kind, rest = source.split(":", 1)
        return Path(rest.rsplit(":", 1)[0] if kind == "mbox" else rest)

    seen = {file_of(s) for s, _ in collector.got}
    seen |= {file_of(f.source) for f in report.failures}
    seen |= {file_of(f.source) for f in report.skipped}
    assert seen == files, "every file was handed over, failed or skipped with a reason"
    assert report.failed > 0 and report.handled == len(collector.got)
    assert report.handled + report.failed + len(report.skipped) >= len(files)
    assert all(f.error.startswith("RuntimeError: cannot store") for f in report.failures)
    skipped = {file_of(f.source).name for f in report.skipped}
    assert {"mail_outlook_1", "email.01", "sample_output_multipart"} <= skipped

"""Where raw inbound mail comes from, before the intake turns it into tickets.

This module knows nothing about tickets: a source reads raw RFC 822 messages and hands each
one, as bytes, to an :class:`Ingest` callback. The callback's contract:

- when it **returns** (any value), the message is durably handled (a ticket committed, or
  screened out and recorded, or recognised as a duplicate): the source may mark, move or delete
  it;
- when it **raises**, the message was not handled: the source leaves it where it is, so it is
  retried next time, and goes on with the other messages;
- when it raises :class:`UnprocessableMessage`, retrying can never succeed (the bytes are not
  mail at all): the IMAP poller sets the message aside (``failed_folder`` or ``\\Flagged``)
  instead of retrying it forever.

Files on disk (:func:`iter_path`, :func:`ingest_path`) are read as:

- a **single message**: any regular file, e.g. ``.eml``. A leading mbox envelope line
  (``From sender date``, not a ``From:`` header) is removed from it; a ``.eml`` file is
  always one message, even when an unescaped ``From`` line in its body would make it look like
  several;
- an **mbox** file: any other file whose first line is an envelope ``From`` line, read with
  :class:`mailbox.mbox`. Each message comes without its envelope line and without the blank
  separator line mbox writers add; ``>From`` lines are returned as stored (undoing mboxo
  quoting is ambiguous);
- a **Maildir**: a directory with ``cur`` and ``new`` sub-directories; both are read (``tmp``
  holds deliveries in progress and is not), files sorted by name, which starts with the
  delivery time;
- a **directory** of any of these, walked recursively in name order. Hidden files and
  directories (``.name``) are skipped, and so are symlinked directories (no loops).

Everything else comes back byte for byte. A file that cannot be a message at all (empty,
whitespace only, or binary: a NUL byte before the first blank line, within the first 8 KiB)
or cannot be read raises :class:`MailSourceError` when given directly; met during a directory
walk it is skipped, logged and listed in :attr:`IngestReport.skipped`, so nothing is lost
silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import os
import re
import stat
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

log = logging.getLogger("ticketcore.channels.email.sources")

#: An mbox envelope line: ``From `` followed by anything but a colon (``From  : x`` is a
#: header with spaces before its colon, seen in real mail).
_ENVELOPE = re.compile(rb"From (?![ \t]*:)")
#: Extensions that always hold exactly one message, never an mbox.
_SINGLE_MESSAGE_SUFFIXES = frozenset({".eml"})
_SNIFF_BYTES = 8192
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


class Ingest(Protocol):
    """The intake's entry point: handle one raw message (see the module docstring)."""

    async def __call__(self, raw: bytes, *, source: str) -> object:
        """Handle ``raw`` durably and return, or raise to have it retried later.

        ``source`` is a short human description of where the message came from, for logs:
        ``imap:support@INBOX:uid=42``, ``file:/path/x.eml``, ``mbox:/path/box:17``.
        """
        ...


class UnprocessableMessage(Exception):
    """Raised by an :class:`Ingest` when retrying can never succeed (not mail at all).

    Sources set such a message aside instead of retrying it: the IMAP poller moves it to
    ``failed_folder`` (or flags it); file sources count it as failed.
    """


class MailSourceError(ValueError):
    """A path does not exist, cannot be read, or does not hold e-mail."""


class IngestFailure(msgspec.Struct, frozen=True):
    """One message that was not handled, or one file that was skipped."""

    source: str
    error: str


class IngestReport(msgspec.Struct, kw_only=True):
    """What :func:`ingest_path` did."""

    #: Messages the ingest returned for.
    handled: int = 0
    #: Messages the ingest raised for (they were not handled).
    failed: int = 0
    #: The failed messages with the ingest's error, in reading order.
    failures: list[IngestFailure] = []
    #: Files met during a directory walk that are not messages (empty, binary, unreadable).
    skipped: list[IngestFailure] = []


class _Skipped(msgspec.Struct, frozen=True):
    """A file of a directory walk that is not a message, and why."""

    source: str
    reason: str


def iter_path(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(source, raw bytes)`` for every message under ``path``.

    ``path`` is a message file, an mbox file, a Maildir or a directory of those (see the
    module docstring). Raises :class:`MailSourceError` (naming the path) when ``path`` does
    not exist, cannot be read or is not mail. Files of a directory walk that are not mail
    are skipped with a warning in the log.
    """
    for item in _scan(Path(path)):
        if isinstance(item, _Skipped):
            log.warning("skipped %s: %s", item.source, item.reason)
            continue
        yield item


async def ingest_path(path: Path, ingest: Ingest) -> IngestReport:
    """Hand every message under ``path`` to ``ingest``, one at a time, in reading order.

    A message the ingest raises for is reported (with the error) and the others still go
    through. Files are read on a worker thread so a large import does not block the event
    loop. Raises :class:`MailSourceError` only when ``path`` itself is unusable.
    """
    report = IngestReport()
    items = _scan(Path(path))
    try:
        await _drain(items, ingest, report)
    finally:
        # Close an open mbox now, also on cancellation. If a worker thread is still inside
        # the generator (cancelled mid-read), closing raises: the file is then closed when
        # the generator is collected.
        with contextlib.suppress(ValueError):
            items.close()
    return report


async def _drain(
    items: Iterator[tuple[str, bytes] | _Skipped], ingest: Ingest, report: IngestReport
) -> None:
    """Feed ``items`` to ``ingest``, recording the outcome of each in ``report``."""
    done = object()
    while True:
        # next() reads the next file or mbox message: disk I/O, kept off the event loop.
        item = await asyncio.to_thread(next, items, done)
        if item is done:
            break
        if isinstance(item, _Skipped):
            log.warning("skipped %s: %s", item.source, item.reason)
            report.skipped.append(IngestFailure(item.source, item.reason))
            continue
        assert isinstance(item, tuple)
        source, raw = item
        try:
            await ingest(raw, source=source)
        except Exception as exc:
            # The contract: not handled, go on with the others.
            log.warning("ingest failed for %s", source, exc_info=True)
            report.failed += 1
            report.failures.append(IngestFailure(source, _describe(exc)))
        else:
            report.handled += 1


def _describe(exc: BaseException) -> str:
    """``"ValueError: bad header"``: the type tells what failed when the message is empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scan(path: Path) -> Generator[tuple[str, bytes] | _Skipped, None, None]:
    """Messages under ``path`` and the files skipped on the way; raises for ``path`` itself."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MailSourceError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise MailSourceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        if _is_maildir(path):
            yield from _scan_maildir(path)
        else:
            yield from _scan_directory(path)
        return
    if not stat.S_ISREG(info.st_mode):
        raise MailSourceError(f"{path}: not a regular file, Maildir or directory")
    for item in _scan_file(path):
        if isinstance(item, _Skipped) and item.source == f"file:{path}":
            # Given directly, a file that is not mail is the caller's mistake: say so. (An
            # empty message inside an mbox is only skipped, like in a directory walk.)
            raise MailSourceError(f"{path}: {item.reason}")
        yield item


def _is_maildir(path: Path) -> bool:
    """Whether ``path`` has the ``cur`` and ``new`` folders of a Maildir."""
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _scan_directory(path: Path) -> Iterator[tuple[str, bytes] | _Skipped]:
    """Walk a plain directory recursively, in name order, skipping hidden entries."""
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError as exc:
        yield _Skipped(f"dir:{path}", f"cannot be listed ({exc.strerror or exc})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                if _is_maildir(child):
                    yield from _scan_maildir(child)
                else:
                    yield from _scan_directory(child)
            elif entry.is_dir():
                yield _Skipped(f"dir:{child}", "symlinked directory not followed")
            elif entry.is_file():
                yield from _scan_file(child)
            else:
                yield _Skipped(f"file:{child}", "not a regular file")
        except OSError as exc:
            yield _Skipped(f"file:{child}", f"cannot be read ({exc.strerror or exc})")


def _scan_maildir(path: Path) -> Iterator[tuple[str, bytes] | _Skipped]:
    """Every message in ``cur`` and ``new``, ordered by file name (delivery time first)."""
    files: list[tuple[str, str]] = []
    for sub in ("cur", "new"):
        try:
            names = os.listdir(path / sub)
        except OSError as exc:
            yield _Skipped(f"maildir:{path}/{sub}", f"cannot be listed ({exc.strerror or exc})")
            continue
        files += [(name, sub) for name in names if not name.startswith(".")]
    for name, sub in sorted(files):
        file = path / sub / name
        source = f"maildir:{file}"
        try:
            raw = file.read_bytes()
        except OSError as exc:
            yield _Skipped(source, f"cannot be read ({exc.strerror or exc})")
            continue
        problem = _not_mail(raw)
        yield _Skipped(source, problem) if problem else (source, raw)


def _scan_file(path: Path) -> Iterator[tuple[str, bytes] | _Skipped]:
    """A single-message file or an mbox file."""
    source = f"file:{path}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        yield _Skipped(source, f"cannot be read ({exc.strerror or exc})")
        return
    problem = _not_mail(raw)
    if problem:
        yield _Skipped(source, problem)
        return
    if not _ENVELOPE.match(raw):
        yield source, raw
        return
    if path.suffix.lower() in _SINGLE_MESSAGE_SUFFIXES:
        # One message saved with its envelope line: the line is transport data, not mail.
        newline = raw.find(b"\n")
        message = raw[newline + 1 :] if newline >= 0 else b""
        problem = _not_mail(message)
        yield _Skipped(source, problem) if problem else (source, message)
        return
    yield from _scan_mbox(path)


def _scan_mbox(path: Path) -> Iterator[tuple[str, bytes] | _Skipped]:
    """Each message of an mbox file, numbered from 1, without its envelope line."""
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), start=1):
            source = f"mbox:{path}:{number}"
            raw = box.get_bytes(key)
            problem = _not_mail(raw)
            yield _Skipped(source, problem) if problem else (source, raw)
    finally:
        box.close()


def _not_mail(raw: bytes) -> str | None:
    """Why ``raw`` cannot be an e-mail message at all, or None.

    Deliberately lenient: broken headers, bodies without headers and other garbage are
    still handed to the ingest, which screens them out and records them. Only what no mail
    parser can use is refused here.
    """
    if not raw.strip():
        return "empty file, not an e-mail message"
    # NUL bytes in the header block mean another file format (an Outlook .msg, an image);
    # in a body they may be a binary part, so the body is not looked at.
    head = raw[:_SNIFF_BYTES]
    blank = _BLANK_LINE.search(head)
    if b"\x00" in (head[: blank.start()] if blank else head):
        return "binary file (NUL bytes), not an RFC 822 message"
    return None

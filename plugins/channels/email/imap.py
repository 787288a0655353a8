"""Poll IMAP mailboxes and hand each new message to the intake.

One :class:`ImapPoller` per configured folder (:class:`ImapMailbox`). ``poll_once()`` opens
one connection (stdlib :mod:`imaplib`, every blocking call on a worker thread), handles at
most ``batch_size`` messages and logs out. It never knows about tickets: each message's raw
bytes go to the :class:`~ticketcore.plugins.channels.email.sources.Ingest` callback.

What is fetched
    The poller keeps, per mailbox (host, username, folder), an :class:`ImapState`:
    ``uidvalidity``; ``last_uid``, the highest UID dealt with (every UID up to it was
    handled, set aside, or is listed in ``failed_uids``); ``failed_uids``, the messages the
    ingest raised for, retried on every poll; and ``baseline_uid`` (below). New messages are
    found by UID (``UID SEARCH UID last_uid+1:*``), not by ``UNSEEN``: a message somebody
    opened in a mail client before the poll is still fetched, and a server that does not
    keep flags does not make us fetch everything again.

    Flags only matter when there is no state yet (first poll, or UIDVALIDITY changed): the
    messages present at that moment, up to ``baseline_uid`` (``UIDNEXT - 1``), are fetched
    only if not ``\\Seen``, so connecting an existing mailbox does not import its read
    history, and after a UIDVALIDITY change what we already marked ``\\Seen`` is skipped
    (what is refetched relies on the ingest's idempotency). Messages flagged ``\\Deleted``
    are never fetched.

    Each poll takes new messages first, in UID order, up to ``batch_size``, then retries
    earlier failures with the room left (at least one per poll, so a busy mailbox never
    starves them); the rest waits for the next poll (``PollReport.remaining``).

When messages are marked or moved
    Sizes come first (``RFC822.SIZE``, with the flags), then each message is fetched alone
    with ``BODY.PEEK[]``, which does not set ``\\Seen``. A message larger than
    ``max_message_bytes`` is not downloaded: it is moved to ``failed_folder`` or, without
    one, flagged ``\\Flagged`` and left unseen, and counted in ``skipped_oversized``; the
    UID state keeps it from being looked at again. So is a message the ingest rejects with
    :class:`~ticketcore.plugins.channels.email.sources.UnprocessableMessage`.

    Only after the ingest returns is the message marked ``\\Seen`` and, with a
    ``processed_folder``, moved there (``UID MOVE``; without the MOVE extension ``UID COPY``,
    ``\\Deleted`` and ``UID EXPUNGE``, or a plain ``EXPUNGE`` on servers without UIDPLUS,
    which also expunges other messages already flagged ``\\Deleted``). When the ingest
    raises, the message is left untouched (unseen, in place), its UID goes to
    ``failed_uids`` and the other messages go on. The state is saved after every message,
    after the marking, so a crash refetches at most the message in flight.

    A failure to mark or move a handled message is reported in ``errors`` but the message
    counts as handled and is not fetched again. ``processed_folder`` and ``failed_folder``
    are created when missing (checked on the first poll of each poller).

Errors
    Per-message problems are in the :class:`PollReport`. Anything that ends the poll
    (connection refused or lost, login refused, folder missing) raises
    :class:`ImapPollError`, whose ``report`` holds what was done until then; the state is
    saved.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar

import msgspec
from piccolo.columns import BigInt, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ticketcore.plugins.channels.email.sources import Ingest, UnprocessableMessage

if TYPE_CHECKING:
    from ticketcore.db.database import Database

log = logging.getLogger("ticketcore.channels.email.imap")

_T = TypeVar("_T")
#: UIDs per FETCH command: keeps command lines well under servers' line limits.
_UIDS_PER_COMMAND = 200
_UID = re.compile(rb"\bUID (\d+)", re.I)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.I)
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)", re.I)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


# --- configuration, state, report -----------------------------------------------------------


class ImapMailbox(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One IMAP folder to poll, and what to do with its messages."""

    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 993
    #: Implicit TLS from the first byte (usually port 993).
    ssl: bool = True
    #: Plain connection upgraded with STARTTLS (usually port 143); excludes ``ssl``.
    starttls: bool = False
    username: str
    password: str
    folder: str = "INBOX"
    #: Move handled messages here; None: mark them ``\\Seen`` and leave them.
    processed_folder: str | None = None
    #: Oversized and unprocessable messages go here; None: flag them and leave them.
    failed_folder: str | None = None
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1)] = 25 * 1024 * 1024
    #: At most this many messages per poll.
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 50
    #: Seconds to wait for the server on any network operation.
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.host.strip():
            problems.append("host is empty")
        if self.ssl and self.starttls:
            problems.append(
                "ssl (implicit TLS, port 993) and starttls (port 143) exclude each other: "
                "set ssl = false to use starttls"
            )
        for name in ("processed_folder", "failed_folder"):
            if getattr(self, name) == self.folder:
                problems.append(f"{name} must differ from folder ({self.folder!r})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def key(self) -> str:
        """``imap://username@host/folder``: the mailbox's fetch state is stored under it."""
        return f"imap://{self.username}@{self.host.lower()}/{self.folder}"

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: never show the password.
        return (
            f"ImapMailbox(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password='***', folder={self.folder!r})"
        )


class ImapState(msgspec.Struct, frozen=True, kw_only=True):
    """What was fetched from one mailbox (see the module docstring)."""

    uidvalidity: int
    #: Every UID up to this one was handled, set aside, or is in ``failed_uids``.
    last_uid: int = 0
    #: The highest UID when the state was (re)set: up to it, only unseen messages count.
    baseline_uid: int = 0
    #: UIDs the ingest raised for, retried on every poll (ascending).
    failed_uids: tuple[int, ...] = ()


class ImapStateStore(Protocol):
    """Where pollers keep their :class:`ImapState`, by mailbox key."""

    async def load(self, mailbox_key: str) -> ImapState | None:
        """The saved state, or None when this mailbox was never polled."""
        ...

    async def save(self, mailbox_key: str, state: ImapState) -> None:
        """Replace the saved state."""
        ...


class PollReport(msgspec.Struct, kw_only=True):
    """What one ``poll_once`` did."""

    mailbox: str
    #: Messages downloaded (oversized ones are not).
    fetched: int = 0
    #: Messages the ingest returned for.
    handled: int = 0
    #: Messages the ingest raised for, or that could not be downloaded: retried next poll.
    failed: int = 0
    #: Messages over ``max_message_bytes``, set aside without downloading.
    skipped_oversized: int = 0
    #: Messages the ingest rejected as unprocessable, set aside.
    rejected: int = 0
    #: Messages (new or to retry) left for the next poll by ``batch_size``.
    remaining: int = 0
    uidvalidity: int | None = None
    last_uid: int = 0
    #: UIDs that will be retried.
    failed_uids: list[int] = []
    errors: list[str] = []


class ImapPollError(Exception):
    """A poll could not run or was cut short; ``report`` has what was done until then."""

    def __init__(self, message: str, report: PollReport) -> None:
        super().__init__(message)
        self.report = report


class ImapCommandError(Exception):
    """The server answered NO (or something unusable) to a command."""


# --- state stores ---------------------------------------------------------------------------


class EmailImapState(Table, tablename="email_imap_state"):
    """The fetch state of each polled IMAP mailbox (one row per mailbox key)."""

    id = Serial(primary_key=True)
    mailbox_key = Varchar(length=1000, unique=True)
    uidvalidity = BigInt()
    last_uid = BigInt(default=0)
    baseline_uid = BigInt(default=0)
    #: JSON list of UIDs to retry.
    failed_uids = Text(default="[]")
    updated_at = Timestamptz(default=TimestamptzNow())


#: The tables to register through the plugin's ``register_tables`` hook.
IMAP_TABLES: list[type[Table]] = [EmailImapState]


class MemoryImapStateStore:
    """Keeps states in a dict: for tests and one-off runs."""

    def __init__(self) -> None:
        self.states: dict[str, ImapState] = {}

    async def load(self, mailbox_key: str) -> ImapState | None:
        """The saved state, or None."""
        return self.states.get(mailbox_key)

    async def save(self, mailbox_key: str, state: ImapState) -> None:
        """Replace the saved state (states are immutable, so no copy is needed)."""
        self.states[mailbox_key] = state


class DatabaseImapStateStore:
    """Keeps states in the ``email_imap_state`` table (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._now = now or (lambda: datetime.now(UTC))

    async def load(self, mailbox_key: str) -> ImapState | None:
        """The saved state, or None."""
        rows = await self.db.fetch(
            "SELECT uidvalidity, last_uid, baseline_uid, failed_uids FROM email_imap_state "
            "WHERE mailbox_key = {}",
            mailbox_key,
        )
        if not rows:
            return None
        row = rows[0]
        failed = msgspec.json.decode(row["failed_uids"] or "[]", type=list[int])
        return ImapState(
            uidvalidity=int(row["uidvalidity"]),
            last_uid=int(row["last_uid"]),
            baseline_uid=int(row["baseline_uid"]),
            failed_uids=tuple(sorted(failed)),
        )

    async def save(self, mailbox_key: str, state: ImapState) -> None:
        """Insert or replace the mailbox's row."""
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO email_imap_state "
                "(mailbox_key, uidvalidity, last_uid, baseline_uid, failed_uids, updated_at) "
                "VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (mailbox_key) DO UPDATE SET "
                "uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
                "baseline_uid = excluded.baseline_uid, failed_uids = excluded.failed_uids, "
                "updated_at = excluded.updated_at",
                mailbox_key,
                state.uidvalidity,
                state.last_uid,
                state.baseline_uid,
                msgspec.json.encode(list(state.failed_uids)).decode(),
                self._now(),
            )


# --- the poller -----------------------------------------------------------------------------


class ImapPoller:
    """Polls one :class:`ImapMailbox`; see the module docstring for what it does.

    ``ssl_context`` replaces the default (system CAs, hostname checked), e.g. to trust a
    private CA. Calls to ``poll_once`` on one poller never overlap.
    """

    def __init__(
        self,
        mailbox: ImapMailbox,
        ingest: Ingest,
        state: ImapStateStore,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.ingest = ingest
        self.state = state
        self._ssl_context = ssl_context
        self._lock = asyncio.Lock()
        self._folders_ready = False

    async def poll_once(self) -> PollReport:
        """Fetch and hand over what is new (and retry what failed); see the module docstring.

        Raises :class:`ImapPollError` when the poll cannot run or is cut short.
        """
        async with self._lock:
            report = PollReport(mailbox=self.mailbox.key)
            connection = _Connection(self.mailbox, self._ssl_context)
            completed = False
            try:
                await self._poll(connection, report)
                completed = True
            except (OSError, imaplib.IMAP4.error, ImapCommandError) as exc:
                report.errors.append(_describe(exc))
                raise ImapPollError(
                    f"IMAP poll of {self.mailbox.key} failed: {_describe(exc)}", report
                ) from exc
            finally:
                if completed:
                    await asyncio.to_thread(connection.logout)
                else:
                    # Failed or cancelled, maybe mid-command: drop the socket, don't talk.
                    connection.shutdown()
            return report

    async def _poll(self, connection: _Connection, report: PollReport) -> None:
        mailbox = self.mailbox
        await asyncio.to_thread(connection.open)
        if not self._folders_ready:
            for folder in (mailbox.processed_folder, mailbox.failed_folder):
                if folder is not None:
                    await asyncio.to_thread(connection.ensure_folder, folder)
            self._folders_ready = True
        uidvalidity, uidnext = await asyncio.to_thread(connection.select, mailbox.folder)
        report.uidvalidity = uidvalidity

        state = await self.state.load(mailbox.key)
        if state is None or state.uidvalidity != uidvalidity:
            if state is not None:
                log.warning(
                    "%s: UIDVALIDITY changed (%s -> %s): fetch state reset",
                    mailbox.key,
                    state.uidvalidity,
                    uidvalidity,
                )
            baseline = uidnext - 1 if uidnext else await asyncio.to_thread(connection.top_uid)
            state = ImapState(uidvalidity=uidvalidity, baseline_uid=max(baseline, 0))
            await self.state.save(mailbox.key, state)
        tracker = _Tracker(state)
        try:
            await self._work(connection, tracker, report)
        finally:
            report.last_uid = tracker.last_uid
            report.failed_uids = sorted(tracker.failed)

    async def _work(self, connection: _Connection, tracker: _Tracker, report: PollReport) -> None:
        """Pick this poll's messages and deal with each."""
        mailbox = self.mailbox
        new = await asyncio.to_thread(connection.new_uids, tracker.snapshot())
        batch = new[: mailbox.batch_size]
        retries = sorted(tracker.failed)
        retry_room = max(1, mailbox.batch_size - len(batch)) if retries else 0
        retries, later = retries[:retry_room], retries[retry_room:]
        report.remaining = len(new) - len(batch) + len(later)
        if not batch and not retries:
            return
        infos = await asyncio.to_thread(connection.sizes, [*batch, *retries])
        for uid in [*batch, *retries]:
            await self._one(connection, tracker, report, uid, infos.get(uid))

    async def _one(
        self,
        connection: _Connection,
        tracker: _Tracker,
        report: PollReport,
        uid: int,
        info: _Info | None,
    ) -> None:
        """Fetch one message, hand it over, mark it; save the state whatever happens."""
        mailbox = self.mailbox
        source = f"imap:{mailbox.username}@{mailbox.folder}:uid={uid}"
        before = tracker.snapshot()
        try:
            if info is None or "\\DELETED" in info.flags:
                tracker.done(uid)  # expunged or deleted meanwhile: nothing left to do
                return
            if info.size > mailbox.max_message_bytes:
                await self._oversized(connection, tracker, report, uid, source, info.size)
                return
            try:
                raw = await asyncio.to_thread(connection.fetch_body, uid)
            except (imaplib.IMAP4.error, ImapCommandError) as exc:
                _reraise_if_connection_lost(exc)
                raw, problem = None, _describe(exc)
            else:
                problem = "the server returned no message body"
            if raw is None:
                report.failed += 1
                report.errors.append(f"{source}: fetch failed: {problem}")
                tracker.fail(uid)
                return
            report.fetched += 1
            if len(raw) > mailbox.max_message_bytes:  # the server's RFC822.SIZE was wrong
                await self._oversized(connection, tracker, report, uid, source, len(raw))
                return
            await self._hand_over(connection, tracker, report, uid, source, raw)
        finally:
            state = tracker.snapshot()
            if state != before:
                await self.state.save(mailbox.key, state)

    async def _hand_over(
        self,
        connection: _Connection,
        tracker: _Tracker,
        report: PollReport,
        uid: int,
        source: str,
        raw: bytes,
    ) -> None:
        """Call the ingest; mark or move the message only once it returned."""
        try:
            await self.ingest(raw, source=source)
        except UnprocessableMessage as exc:
            report.rejected += 1
            report.errors.append(f"{source}: rejected by the intake: {_describe(exc)}")
            log.warning("%s: rejected by the intake: %s", source, exc)
            tracker.done(uid)
            await self._set_aside(connection, report, uid, source)
        except Exception as exc:
            # Not handled: leave the message untouched, retry it next poll.
            report.failed += 1
            report.errors.append(f"{source}: {_describe(exc)}")
            log.warning("%s: ingest failed, will retry", source, exc_info=True)
            tracker.fail(uid)
        else:
            report.handled += 1
            tracker.done(uid)
            await self._step(report, source, "marking it handled", connection.mark_handled, uid)

    async def _oversized(
        self,
        connection: _Connection,
        tracker: _Tracker,
        report: PollReport,
        uid: int,
        source: str,
        size: int,
    ) -> None:
        report.skipped_oversized += 1
        limit = self.mailbox.max_message_bytes
        report.errors.append(f"{source}: {size} bytes is over max_message_bytes ({limit})")
        log.warning("%s: %s bytes is over max_message_bytes (%s): set aside", source, size, limit)
        tracker.done(uid)
        await self._set_aside(connection, report, uid, source)

    async def _set_aside(
        self, connection: _Connection, report: PollReport, uid: int, source: str
    ) -> None:
        await self._step(report, source, "setting it aside", connection.set_aside, uid)

    async def _step(
        self,
        report: PollReport,
        source: str,
        what: str,
        action: Callable[[int], None],
        uid: int,
    ) -> None:
        """Run a marking/moving command; a refusal is reported, a lost connection raised."""
        try:
            await asyncio.to_thread(action, uid)
        except (imaplib.IMAP4.error, ImapCommandError) as exc:
            _reraise_if_connection_lost(exc)
            report.errors.append(f"{source}: {what} failed: {_describe(exc)}")
            log.warning("%s: %s failed: %s", source, what, exc)


class _Tracker:
    """The state being advanced by one poll."""

    def __init__(self, state: ImapState) -> None:
        self.uidvalidity = state.uidvalidity
        self.baseline_uid = state.baseline_uid
        self.last_uid = state.last_uid
        self.failed = set(state.failed_uids)

    def done(self, uid: int) -> None:
        """``uid`` needs nothing more (handled, set aside, or gone)."""
        self.failed.discard(uid)
        self.last_uid = max(self.last_uid, uid)

    def fail(self, uid: int) -> None:
        """``uid`` was not handled: retry it."""
        self.failed.add(uid)
        self.last_uid = max(self.last_uid, uid)

    def snapshot(self) -> ImapState:
        """The state as it stands."""
        return ImapState(
            uidvalidity=self.uidvalidity,
            last_uid=self.last_uid,
            baseline_uid=self.baseline_uid,
            failed_uids=tuple(sorted(self.failed)),
        )


# --- the blocking IMAP session --------------------------------------------------------------


class _Info(msgspec.Struct, frozen=True):
    """Size and flags of a message, from ``FETCH (RFC822.SIZE FLAGS)``."""

    size: int
    flags: frozenset[str]


class _Connection:
    """One imaplib connection. Every method blocks: call them with ``asyncio.to_thread``,
    one at a time."""

    def __init__(self, mailbox: ImapMailbox, ssl_context: ssl.SSLContext | None) -> None:
        self.mailbox = mailbox
        self.ssl_context = ssl_context
        self.imap: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()

    @property
    def _imap(self) -> imaplib.IMAP4:
        if self.imap is None:
            raise ImapCommandError("not connected")
        return self.imap

    def open(self) -> None:
        """Connect (TLS or STARTTLS as configured), log in, read the capabilities."""
        mailbox = self.mailbox
        context = self.ssl_context or ssl.create_default_context()
        if mailbox.ssl:
            self.imap = imaplib.IMAP4_SSL(
                mailbox.host, mailbox.port, ssl_context=context, timeout=mailbox.timeout
            )
        else:
            self.imap = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=mailbox.timeout)
        if mailbox.starttls:
            self.imap.starttls(context)
        elif not mailbox.ssl and mailbox.host not in _LOOPBACK:
            log.warning("%s: logging in without TLS: the password is sent in clear", mailbox.key)
        user, password = mailbox.username, mailbox.password
        if user.isascii() and password.isascii() and "LOGINDISABLED" not in self.imap.capabilities:
            self.imap.login(_quoted(user), password)
        else:
            # LOGIN takes only ASCII; SASL PLAIN carries UTF-8.
            credentials = f"\0{user}\0{password}".encode()
            self.imap.authenticate("PLAIN", lambda _challenge: credentials)
        # imaplib keeps the pre-login capabilities; MOVE and UIDPLUS show up only now.
        data = _ok(self.imap.capability(), "CAPABILITY")
        words = b" ".join(item for item in data if isinstance(item, bytes))
        self.capabilities = frozenset(words.decode("ascii", "replace").upper().split())

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it exists."""
        name = _mailbox_name(folder)
        typ, data = self._imap.list('""', name)
        if typ == "OK" and any(data):
            return
        _ok(self._imap.create(name), f"CREATE {folder}")
        log.info("created IMAP folder %r for %s", folder, self.mailbox.key)

    def select(self, folder: str) -> tuple[int, int | None]:
        """Select ``folder`` read-write; return its UIDVALIDITY and UIDNEXT (if sent)."""
        imap = self._imap
        _ok(imap.select(_mailbox_name(folder)), f"SELECT {folder}")
        uidvalidity = _number(imap.response("UIDVALIDITY")[1])
        if uidvalidity is None:
            raise ImapCommandError(f"SELECT {folder}: the server sent no UIDVALIDITY")
        return uidvalidity, _number(imap.response("UIDNEXT")[1])

    def top_uid(self) -> int:
        """The highest UID in the selected folder (0 when empty): for servers without UIDNEXT."""
        return max(self._search("ALL"), default=0)

    def new_uids(self, state: ImapState) -> list[int]:
        """UIDs above ``last_uid`` to fetch, ascending (see the module docstring)."""
        floor = max(state.last_uid, state.baseline_uid) + 1
        # "n:*" always matches the highest UID, even below n: filter again here.
        found = {uid for uid in self._search(f"UID {floor}:*", "UNDELETED") if uid >= floor}
        if state.last_uid < state.baseline_uid:
            found.update(
                self._search(f"UID {state.last_uid + 1}:{state.baseline_uid}", "UNSEEN UNDELETED")
            )
        return sorted(found)

    def _search(self, *criteria: str) -> list[int]:
        data = _ok(self._imap.uid("SEARCH", *criteria), "UID SEARCH")
        return [int(word) for item in data if isinstance(item, bytes) for word in item.split()]

    def sizes(self, uids: list[int]) -> dict[int, _Info]:
        """Size and flags of each UID that still exists."""
        wanted = set(uids)
        found: dict[int, _Info] = {}
        for part in _uid_sets(sorted(wanted), _UIDS_PER_COMMAND):
            data = _ok(self._imap.uid("FETCH", part, "(UID RFC822.SIZE FLAGS)"), "UID FETCH")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if not isinstance(line, bytes):
                    continue
                uid, size, flags = _UID.search(line), _SIZE.search(line), _FLAGS.search(line)
                if uid and size and int(uid.group(1)) in wanted:
                    names = flags.group(1).decode("ascii", "replace").upper() if flags else ""
                    found[int(uid.group(1))] = _Info(int(size.group(1)), frozenset(names.split()))
        return found

    def fetch_body(self, uid: int) -> bytes | None:
        """The whole message, without setting ``\\Seen``; None when the server sends none."""
        data = _ok(self._imap.uid("FETCH", str(uid), "(UID BODY.PEEK[])"), "UID FETCH")
        for index, item in enumerate(data):
            if not (isinstance(item, tuple) and len(item) == 2):
                continue
            head, literal = item
            if b"BODY[]" not in head.upper():
                continue
            # Servers put UID before or after the literal; unsolicited FETCH responses
            # about other messages may be mixed in.
            tail = data[index + 1] if index + 1 < len(data) else b""
            found = _UID.search(head) or (_UID.search(tail) if isinstance(tail, bytes) else None)
            if found is None or int(found.group(1)) == uid:
                return bytes(literal)
        return None

    def mark_handled(self, uid: int) -> None:
        """``\\Seen``, then into ``processed_folder`` when there is one."""
        self._store(uid, "\\Seen")
        if self.mailbox.processed_folder is not None:
            self._move(uid, self.mailbox.processed_folder)

    def set_aside(self, uid: int) -> None:
        """Into ``failed_folder``, or ``\\Flagged`` in place when there is none."""
        if self.mailbox.failed_folder is not None:
            self._move(uid, self.mailbox.failed_folder)
        else:
            self._store(uid, "\\Flagged")

    def _store(self, uid: int, flag: str) -> None:
        _ok(self._imap.uid("STORE", str(uid), "+FLAGS.SILENT", f"({flag})"), "UID STORE")

    def _move(self, uid: int, folder: str) -> None:
        imap, target = self._imap, _mailbox_name(folder)
        if "MOVE" in self.capabilities:
            _ok(imap.uid("MOVE", str(uid), target), f"UID MOVE to {folder}")
            return
        _ok(imap.uid("COPY", str(uid), target), f"UID COPY to {folder}")
        self._store(uid, "\\Deleted")
        if "UIDPLUS" in self.capabilities:
            _ok(imap.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
        else:
            _ok(imap.expunge(), "EXPUNGE")

    def logout(self) -> None:
        """Say goodbye; a server that hangs up first is fine."""
        if self.imap is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self.imap.logout()
            self.imap = None

    def shutdown(self) -> None:
        """Close the socket without a word (safe while another thread is blocked on it)."""
        if self.imap is not None:
            with contextlib.suppress(OSError):
                self.imap.shutdown()
            self.imap = None


# --- helpers --------------------------------------------------------------------------------


def _ok(response: tuple[str, list[_T]], what: str) -> list[_T]:
    """The data of an OK response; NO (imaplib raises for BAD) becomes ImapCommandError."""
    typ, data = response
    if typ != "OK":
        text = b" ".join(item for item in data if isinstance(item, bytes))
        raise ImapCommandError(f"{what}: {typ} {text.decode('utf-8', 'replace')}".strip())
    return data


def _number(data: list[bytes | None]) -> int | None:
    """The integer of a response code such as ``[UIDVALIDITY 123]``."""
    for item in data:
        if isinstance(item, bytes) and item.strip().isdigit():
            return int(item)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _reraise_if_connection_lost(exc: BaseException) -> None:
    """A per-message error is reported, but a dead connection ends the poll."""
    if isinstance(exc, imaplib.IMAP4.abort):
        raise exc


def _uid_sets(uids: list[int], size: int) -> Iterator[str]:
    """Sorted UIDs as IMAP sets (``1:3,7``), at most ``size`` UIDs per set."""
    for start in range(0, len(uids), size):
        yield ",".join(_ranges(uids[start : start + size]))


def _ranges(uids: Iterable[int]) -> Iterator[str]:
    run: list[int] = []
    for uid in uids:
        if run and uid == run[-1] + 1:
            run.append(uid)
            continue
        if run:
            yield f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0])
        run = [uid]
    if run:
        yield f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0])


def _quoted(text: str) -> str:
    """An IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_name(folder: str) -> str:
    """A folder name as a command argument: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            packed = base64.b64encode("".join(wide).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + packed.replace(b"/", b",").decode("ascii") + "-")
            wide.clear()

    for char in folder:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            wide.append(char)
    flush()
    return _quoted("".join(out))

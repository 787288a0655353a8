"""IMAP polling against a real IMAP server: pymap's in-memory ``dict`` backend, served
in-process on a free port of 127.0.0.1 (pymap's own ``IMAPServer`` behind
``asyncio.start_server``), with a known user. Messages are put there and checked with a
separate ``imaplib`` client, run on a worker thread like the poller's, since the server lives
on the test's event loop.

Covered: handled messages marked ``\\Seen`` or moved (MOVE, and COPY/EXPUNGE on a server
without MOVE), a failing ingest leaving its message in place and the retry, oversized and
unprocessable messages set aside without blocking the others, nothing refetched (even when the
server forgets flags), the first poll not importing read history, batches, UIDVALIDITY reset,
TLS and STARTTLS, and the state in the database surviving a new poller on both engines.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import shutil
import ssl
import subprocess
from argparse import Namespace
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from ticketcore import hookimpl
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.plugins.channels.email.imap import (
    IMAP_TABLES,
    DatabaseImapStateStore,
    ImapMailbox,
    ImapPoller,
    ImapPollError,
    ImapState,
    MemoryImapStateStore,
)
from ticketcore.plugins.channels.email.sources import UnprocessableMessage
from ticketcore.testing import InsertFailure

pytest.importorskip("pymap", reason="pymap (test extra) runs the IMAP server of these tests")

from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import DictBackend, Login
from pymap.imap import IMAPServer
from pymap.parsing.commands import Commands
from pymap.user import Passwords, UserMetadata
from pysasl.hashing import BuiltinHash

USER = "support"
PASSWORD = "s3cret pass"
HelpdeskFactory = Callable[..., Awaitable[App]]


# --- the server -----------------------------------------------------------------------------


class NoMoveConfig(DictConfig):
    """A server without the MOVE extension: neither advertised nor accepted."""

    uidplus = True

    @property
    def login_capability(self) -> list[bytes]:
        dropped = {b"MOVE"} if self.uidplus else {b"MOVE", b"UIDPLUS"}
        return [cap for cap in super().login_capability if cap not in dropped]

    @property
    def commands(self) -> Commands:
        commands = super().commands
        commands.deregister(b"MOVE")
        commands.deregister(b"UID MOVE")
        if not self.uidplus:
            commands.deregister(b"UID EXPUNGE")
        return commands


class NoMoveNoUidplusConfig(NoMoveConfig):
    """An older server still: no MOVE, no UIDPLUS (no UID EXPUNGE)."""

    uidplus = False


@dataclass
class Stored:
    """A message as the server holds it."""

    uid: int
    flags: set[str]
    raw: bytes


@dataclass
class ImapServer:
    """A running pymap server and helpers that talk to it like a separate mail client."""

    port: int
    client_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"

    def mailbox(self, **overrides: Any) -> ImapMailbox:
        """Settings for polling this server's INBOX (plain connection unless overridden)."""
        settings: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "ssl": False,
            "username": USER,
            "password": PASSWORD,
            "timeout": 10.0,
        }
        settings.update(overrides)
        return ImapMailbox(**settings)

    def _client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(USER, PASSWORD)
        return client

    async def append(self, raw: bytes, folder: str = "INBOX", flags: str | None = None) -> int:
        """Deliver ``raw`` into ``folder``; return its UID."""

        def run() -> int:
            client = self._client()
            try:
                typ, data = client.append(folder, flags, None, raw)
                assert typ == "OK", data
                found = re.search(rb"APPENDUID \d+ (\d+)", data[0])
                assert found, data
                return int(found.group(1))
            finally:
                client.logout()

        return await asyncio.to_thread(run)

    async def messages(self, folder: str = "INBOX") -> list[Stored]:
        """Every message of ``folder`` with its flags and bytes, by UID."""

        def run() -> list[Stored]:
            client = self._client()
            try:
                typ, data = client.select(folder, readonly=True)
                assert typ == "OK", data
                typ, data = client.uid("SEARCH", "ALL")
                found: list[Stored] = []
                for uid in (int(word) for word in data[0].split()):
                    typ, flag_data = client.uid("FETCH", str(uid), "(FLAGS)")
                    flags = re.search(rb"FLAGS \(([^)]*)\)", flag_data[0])
                    assert flags, flag_data
                    typ, body = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
                    literal = next(item[1] for item in body if isinstance(item, tuple))
                    names = set(flags.group(1).decode().split()) - {"\\Recent"}
                    found.append(Stored(uid, names, literal))
                return found
            finally:
                client.logout()

        return await asyncio.to_thread(run)

    async def command(self, folder: str, *commands: tuple[str, ...]) -> None:
        """Run UID commands (``("STORE", "1:*", "-FLAGS", "(\\Seen)")``) in ``folder``."""

        def run() -> None:
            client = self._client()
            try:
                typ, data = client.select(folder)
                assert typ == "OK", data
                for name, *args in commands:
                    typ, data = client.uid(name, *args)
                    assert typ == "OK", data
            finally:
                client.logout()

        await asyncio.to_thread(run)

    async def folders(self) -> list[bytes]:
        """The raw LIST lines."""

        def run() -> list[bytes]:
            client = self._client()
            try:
                return [line for line in client.list()[1] if isinstance(line, bytes)]
            finally:
                client.logout()

        return await asyncio.to_thread(run)

    async def create(self, folder: str) -> None:
        """Create ``folder``."""

        def run() -> None:
            client = self._client()
            try:
                assert client.create(folder)[0] == "OK"
            finally:
                client.logout()

        await asyncio.to_thread(run)

    async def recreate(self, folder: str) -> None:
        """Delete ``folder`` and create it again, empty (a new UIDVALIDITY)."""

        def run() -> None:
            client = self._client()
            try:
                assert client.delete(folder)[0] == "OK"
                assert client.create(folder)[0] == "OK"
            finally:
                client.logout()

        await asyncio.to_thread(run)


async def start_server(
    config_class: type[DictConfig] = DictConfig,
    *,
    starttls: tuple[Path, Path] | None = None,
    implicit_tls: ssl.SSLContext | None = None,
) -> tuple[asyncio.Server, int]:
    """Serve pymap's dict backend on a free port of 127.0.0.1 with user ``support``."""
    cert, key = starttls if starttls else (None, None)
    args = Namespace(
        host="127.0.0.1",
        port=0,
        debug=False,
        cert=str(cert) if cert else None,
        key=str(key) if key else None,
        tls=starttls is not None,
        demo_data=False,
        demo_user=USER,
        demo_password=PASSWORD,
        passlib_cfg=None,
        proxy_protocol=None,
    )
    # One hash round instead of 500,000: every login of these tests would take 0.2 s.
    config = config_class.from_args(args, hash_context=BuiltinHash(rounds=1))
    login = Login(config)
    hashed = await Passwords(config).hash_password(PASSWORD)
    await login.demo_user_identity.set(UserMetadata(config, USER, password=hashed))
    backend = DictBackend(login, config)
    handler = ProxyProtocolReader(config.proxy_protocol).get_callback(
        IMAPServer(backend.login, config)
    )
    # Port 0: the OS picks a free port, so parallel runs never collide.
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=implicit_tls)
    return server, server.sockets[0].getsockname()[1]


@pytest_asyncio.fixture
async def imap() -> AsyncIterator[ImapServer]:
    """A fresh pymap server (empty INBOX) for this test."""
    server, port = await start_server()
    async with server:
        yield ImapServer(port)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# --- helpers --------------------------------------------------------------------------------


def message(number: int, *, body: bytes = b"", extra: bytes = b"") -> bytes:
    """A small message with CRLF line ends, as IMAP stores them."""
    return (
        b"From: Ann <ann@example.org>\r\n"
        b"To: support@example.org\r\n"
        b"Subject: Printer " + str(number).encode() + b"\r\n"
        b"Message-ID: <m" + str(number).encode() + b"@example.org>\r\n" + extra + b"\r\n"
        b"Body " + str(number).encode() + b"\r\n" + body
    )


@dataclass
class Recorder:
    """An ingest that records what it gets; raises for messages containing ``fail_on``
    (``failures`` times each, forever when None), or ``reject_on`` (unprocessable)."""

    fail_on: bytes | None = None
    failures: int | None = None
    reject_on: bytes | None = None
    calls: list[tuple[str, bytes]] = field(default_factory=list)
    _failed: dict[bytes, int] = field(default_factory=dict)

    async def __call__(self, raw: bytes, *, source: str) -> object:
        self.calls.append((source, raw))
        if self.reject_on is not None and self.reject_on in raw:
            raise UnprocessableMessage("not an e-mail message")
        if self.fail_on is not None and self.fail_on in raw:
            count = self._failed.get(raw, 0)
            if self.failures is None or count < self.failures:
                self._failed[raw] = count + 1
                raise RuntimeError("database is unavailable")
        return "handled"

    @property
    def raws(self) -> list[bytes]:
        """The bytes received, in order."""
        return [raw for _, raw in self.calls]


# --- marking and moving ---------------------------------------------------------------------


async def test_messages_are_handled_then_marked_seen_and_not_fetched_again(
    imap: ImapServer,
) -> None:
    raws = [message(n) for n in range(3)]
    uids = [await imap.append(raw) for raw in raws]
    store = MemoryImapStateStore()
    recorder = Recorder()
    poller = ImapPoller(imap.mailbox(), recorder, store)

    report = await poller.poll_once()

    assert (report.fetched, report.handled, report.failed, report.errors) == (3, 3, 0, [])
    assert recorder.raws == raws, "bytes reach the ingest exactly as stored"
    assert [source for source, _ in recorder.calls] == [
        f"imap:support@INBOX:uid={uid}" for uid in uids
    ]
    stored = await imap.messages()
    assert [m.uid for m in stored] == uids, "without processed_folder they stay in place"
    assert all("\\Seen" in m.flags for m in stored)
    assert report.uidvalidity is not None and report.last_uid == uids[-1]
    state = await store.load(imap.mailbox().key)
    assert state == ImapState(
        uidvalidity=report.uidvalidity, last_uid=uids[-1], baseline_uid=uids[-1]
    ), "all three were there at the first poll: the baseline is the last of them"

    again = await poller.poll_once()

    assert (again.fetched, again.handled, again.failed, again.remaining) == (0, 0, 0, 0)
    assert len(recorder.calls) == 3


async def test_handled_messages_are_moved_to_the_processed_folder(imap: ImapServer) -> None:
    raws = [message(n) for n in range(3)]
    for raw in raws:
        await imap.append(raw)
    poller = ImapPoller(
        imap.mailbox(processed_folder="Processed"), Recorder(), MemoryImapStateStore()
    )

    report = await poller.poll_once()  # "Processed" does not exist yet: created

    assert report.handled == 3 and report.errors == []
    assert await imap.messages() == []
    processed = await imap.messages("Processed")
    assert [m.raw for m in processed] == raws
    assert all("\\Seen" in m.flags for m in processed)


@pytest.mark.parametrize("config_class", [NoMoveConfig, NoMoveNoUidplusConfig])
async def test_servers_without_move_get_copy_delete_expunge(
    config_class: type[DictConfig],
) -> None:
    server, port = await start_server(config_class)
    async with server:
        imap = ImapServer(port)
        raws = [message(n) for n in range(3)]
        for raw in raws:
            await imap.append(raw)
        poller = ImapPoller(
            imap.mailbox(processed_folder="Done"), Recorder(), MemoryImapStateStore()
        )

        report = await poller.poll_once()

        # MOVE is refused by this server: any attempt would have shown up in errors.
        assert report.handled == 3 and report.errors == []
        assert await imap.messages() == []
        assert [m.raw for m in await imap.messages("Done")] == raws


async def test_a_folder_name_outside_ascii_is_sent_in_modified_utf7(imap: ImapServer) -> None:
    await imap.append(message(1))
    poller = ImapPoller(
        imap.mailbox(processed_folder="Traités & co"), Recorder(), MemoryImapStateStore()
    )

    report = await poller.poll_once()

    assert report.handled == 1 and report.errors == []
    assert any(line.endswith(b'"Trait&AOk-s &- co"') for line in await imap.folders())
    assert await imap.messages() == []


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("processed_folder", [None, "Processed"])
async def test_a_failing_ingest_leaves_its_message_in_place_and_it_is_retried(
    imap: ImapServer, processed_folder: str | None
) -> None:
    raws = [message(1), message(2, extra=b"X-Trouble: yes\r\n"), message(3)]
    uids = [await imap.append(raw) for raw in raws]
    store = MemoryImapStateStore()
    recorder = Recorder(fail_on=b"X-Trouble", failures=1)
    poller = ImapPoller(imap.mailbox(processed_folder=processed_folder), recorder, store)

    first = await poller.poll_once()

    assert (first.fetched, first.handled, first.failed) == (3, 2, 1)
    assert first.errors == [
        f"imap:support@INBOX:uid={uids[1]}: RuntimeError: database is unavailable"
    ]
    assert first.failed_uids == [uids[1]] and first.last_uid == uids[2]
    inbox = {m.uid: m for m in await imap.messages()}
    assert "\\Seen" not in inbox[uids[1]].flags, "the failed message is left untouched"
    if processed_folder:
        assert list(inbox) == [uids[1]]
    else:
        assert all("\\Seen" in inbox[uid].flags for uid in (uids[0], uids[2]))
    state = await store.load(imap.mailbox().key)
    assert state is not None and state.failed_uids == (uids[1],)

    second = await poller.poll_once()

    assert (second.fetched, second.handled, second.failed, second.errors) == (1, 1, 0, [])
    assert recorder.raws == [*raws, raws[1]]
    assert second.failed_uids == []
    if processed_folder:
        assert await imap.messages() == []
        assert sorted(m.raw for m in await imap.messages(processed_folder)) == sorted(raws)
    else:
        assert all("\\Seen" in m.flags for m in await imap.messages())
    third = await poller.poll_once()
    assert (third.fetched, third.handled) == (0, 0)


@pytest.mark.parametrize("failed_folder", [None, "Rejected"])
async def test_an_oversized_message_is_set_aside_without_blocking_the_others(
    imap: ImapServer, failed_folder: str | None
) -> None:
    big = message(2, body=(b"x" * 76 + b"\r\n") * 200)  # about 15 KiB
    raws = [message(1), big, message(3)]
    uids = [await imap.append(raw) for raw in raws]
    recorder = Recorder()
    poller = ImapPoller(
        imap.mailbox(max_message_bytes=4000, failed_folder=failed_folder),
        recorder,
        MemoryImapStateStore(),
    )

    report = await poller.poll_once()

    assert (report.fetched, report.handled, report.skipped_oversized) == (2, 2, 1)
    assert recorder.raws == [raws[0], raws[2]], "the big one is never downloaded"
    assert len(report.errors) == 1 and "over max_message_bytes (4000)" in report.errors[0]
    inbox = {m.uid: m for m in await imap.messages()}
    if failed_folder:
        assert uids[1] not in inbox
        [rejected] = await imap.messages(failed_folder)
        assert rejected.raw == big and "\\Seen" not in rejected.flags
    else:
        assert inbox[uids[1]].flags == {"\\Flagged"}, "flagged for a human, left unseen"

    again = await poller.poll_once()

    assert (again.fetched, again.skipped_oversized, again.errors) == (0, 0, [])


async def test_a_message_the_intake_cannot_process_goes_to_the_failed_folder(
    imap: ImapServer,
) -> None:
    raws = [message(1, extra=b"X-Garbage: yes\r\n"), message(2)]
    for raw in raws:
        await imap.append(raw)
    poller = ImapPoller(
        imap.mailbox(failed_folder="Rejected"),
        Recorder(reject_on=b"X-Garbage"),
        MemoryImapStateStore(),
    )

    report = await poller.poll_once()

    assert (report.handled, report.rejected, report.failed, report.failed_uids) == (1, 1, 0, [])
    assert [m.raw for m in await imap.messages("Rejected")] == [raws[0]]
    assert [m.raw for m in await imap.messages()] == [raws[1]]
    assert (await poller.poll_once()).fetched == 0, "not retried"


async def test_errors_that_stop_the_poll_raise_with_a_clear_message(imap: ImapServer) -> None:
    wrong = ImapPoller(imap.mailbox(password="nope"), Recorder(), MemoryImapStateStore())
    with pytest.raises(ImapPollError, match=r"imap://support@127\.0\.0\.1/INBOX") as caught:
        await wrong.poll_once()
    assert caught.value.report.errors and caught.value.report.fetched == 0

    missing = ImapPoller(imap.mailbox(folder="Nowhere"), Recorder(), MemoryImapStateStore())
    with pytest.raises(ImapPollError, match="SELECT Nowhere"):
        await missing.poll_once()

    refused = ImapServer(port=1).mailbox()
    with pytest.raises(ImapPollError, match="ConnectionRefusedError"):
        await ImapPoller(refused, Recorder(), MemoryImapStateStore()).poll_once()


async def test_a_poll_cancelled_mid_ingest_keeps_what_was_done(imap: ImapServer) -> None:
    raws = [message(1), message(2, extra=b"X-Slow: yes\r\n"), message(3)]
    uids = [await imap.append(raw) for raw in raws]
    entered = asyncio.Event()
    seen: list[bytes] = []

    async def slow_ingest(raw: bytes, *, source: str) -> object:
        seen.append(raw)
        if b"X-Slow" in raw and len(seen) == 2:
            entered.set()
            await asyncio.sleep(3600)  # a stuck database, say
        return None

    store = MemoryImapStateStore()
    mailbox = imap.mailbox()
    poll = asyncio.create_task(ImapPoller(mailbox, slow_ingest, store).poll_once())
    await entered.wait()
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll

    state = await store.load(mailbox.key)
    assert state is not None and state.last_uid == uids[0], "the first one is recorded"
    flags = {m.uid: m.flags for m in await imap.messages()}
    assert "\\Seen" in flags[uids[0]] and "\\Seen" not in flags[uids[1]]

    report = await ImapPoller(mailbox, slow_ingest, store).poll_once()

    assert report.handled == 2 and seen[2:] == raws[1:], "resumes at the message in flight"


# --- what is fetched ------------------------------------------------------------------------


async def test_a_server_that_forgets_flags_does_not_cause_refetching(imap: ImapServer) -> None:
    for n in range(3):
        await imap.append(message(n))
    recorder = Recorder()
    poller = ImapPoller(imap.mailbox(), recorder, MemoryImapStateStore())
    await poller.poll_once()

    await imap.command("INBOX", ("STORE", "1:*", "-FLAGS", "(\\Seen)"))
    report = await poller.poll_once()

    assert (report.fetched, len(recorder.calls)) == (0, 3)


async def test_the_first_poll_skips_read_history_but_later_mail_is_fetched_even_if_read(
    imap: ImapServer,
) -> None:
    old_read = message(1)
    old_unread = message(2)
    await imap.append(old_read, flags="(\\Seen)")
    await imap.append(old_unread)
    recorder = Recorder()
    poller = ImapPoller(imap.mailbox(), recorder, MemoryImapStateStore())

    await poller.poll_once()
    assert recorder.raws == [old_unread]

    # Opened in a webmail before our next poll: still new to us.
    read_meanwhile = message(3)
    await imap.append(read_meanwhile, flags="(\\Seen)")
    await poller.poll_once()
    assert recorder.raws == [old_unread, read_meanwhile]


async def test_batch_size_spreads_a_backlog_over_polls(imap: ImapServer) -> None:
    raws = [message(n) for n in range(5)]
    for raw in raws:
        await imap.append(raw)
    recorder = Recorder()
    poller = ImapPoller(imap.mailbox(batch_size=2), recorder, MemoryImapStateStore())

    reports = [await poller.poll_once() for _ in range(4)]

    assert [(r.handled, r.remaining) for r in reports] == [(2, 3), (2, 1), (1, 0), (0, 0)]
    assert recorder.raws == raws, "in UID order"


async def test_retries_are_not_starved_by_a_busy_mailbox(imap: ImapServer) -> None:
    flaky = message(1, extra=b"X-Trouble: yes\r\n")
    await imap.append(flaky)
    await imap.append(message(2))
    recorder = Recorder(fail_on=b"X-Trouble", failures=1)
    poller = ImapPoller(imap.mailbox(batch_size=2), recorder, MemoryImapStateStore())
    first = await poller.poll_once()
    assert (first.handled, first.failed) == (1, 1)

    for n in (3, 4):
        await imap.append(message(n))
    second = await poller.poll_once()  # two new messages fill the batch; one retry still runs

    assert (second.handled, second.failed, second.failed_uids) == (3, 0, [])
    assert recorder.raws[-3:] == [message(3), message(4), flaky]


async def test_a_uidvalidity_change_resets_the_state(imap: ImapServer) -> None:
    await imap.create("Support")
    await imap.append(message(1), folder="Support")
    store = MemoryImapStateStore()
    recorder = Recorder()
    mailbox = imap.mailbox(folder="Support")
    first = await ImapPoller(mailbox, recorder, store).poll_once()
    assert first.handled == 1

    await imap.recreate("Support")  # the same name, a new folder: UIDs start over
    await imap.append(message(2), folder="Support")
    second = await ImapPoller(mailbox, recorder, store).poll_once()

    assert second.uidvalidity != first.uidvalidity
    assert (second.fetched, second.handled) == (1, 1)
    assert recorder.raws == [message(1), message(2)]


async def test_overlapping_polls_of_one_poller_do_not_fetch_twice(imap: ImapServer) -> None:
    for n in range(3):
        await imap.append(message(n))
    recorder = Recorder()
    poller = ImapPoller(imap.mailbox(), recorder, MemoryImapStateStore())

    reports = await asyncio.gather(poller.poll_once(), poller.poll_once())

    assert sorted(r.handled for r in reports) == [0, 3]
    assert len(recorder.calls) == 3


# --- TLS ------------------------------------------------------------------------------------


async def test_starttls(certificate: tuple[Path, Path]) -> None:
    server, port = await start_server(starttls=certificate)
    async with server:
        imap = ImapServer(port)
        await imap.append(message(1))
        client_context = ssl.create_default_context(cafile=str(certificate[0]))
        poller = ImapPoller(
            imap.mailbox(starttls=True),
            Recorder(),
            MemoryImapStateStore(),
            ssl_context=client_context,
        )

        assert (await poller.poll_once()).handled == 1

        untrusted = ImapPoller(imap.mailbox(starttls=True), Recorder(), MemoryImapStateStore())
        with pytest.raises(ImapPollError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.poll_once()


async def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    server, port = await start_server(implicit_tls=server_context)
    async with server:
        client_context = ssl.create_default_context(cafile=str(certificate[0]))
        mailbox = ImapServer(port).mailbox(ssl=True)
        recorder = Recorder()

        report = await ImapPoller(
            mailbox, recorder, MemoryImapStateStore(), ssl_context=client_context
        ).poll_once()

        assert (report.fetched, report.errors) == (0, [])  # connected, logged in, selected


# --- settings -------------------------------------------------------------------------------


def test_settings_are_checked_and_the_password_never_shown() -> None:
    base = {"host": "imap.example.org", "username": "support", "password": "hunter2"}
    mailbox = msgspec.convert(base, ImapMailbox)
    assert (mailbox.port, mailbox.ssl, mailbox.folder, mailbox.batch_size) == (
        993,
        True,
        "INBOX",
        50,
    )
    assert mailbox.key == "imap://support@imap.example.org/INBOX"
    assert "hunter2" not in repr(mailbox)
    with pytest.raises(msgspec.ValidationError, match="exclude each other"):
        msgspec.convert({**base, "starttls": True}, ImapMailbox)
    with pytest.raises(msgspec.ValidationError, match="must differ from folder"):
        msgspec.convert({**base, "processed_folder": "INBOX"}, ImapMailbox)
    with pytest.raises(msgspec.ValidationError, match="batch_size"):
        msgspec.convert({**base, "batch_size": 0}, ImapMailbox)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**base, "pasword": "x"}, ImapMailbox)


# --- state in the database (both engines) ---------------------------------------------------


class ImapTables:
    """Registers the poller's table, as the e-mail channel plugin does."""

    @hookimpl
    def register_tables(self) -> list[Any]:
        """The IMAP state table."""
        return IMAP_TABLES


async def test_database_store_round_trip(helpdesk_factory: HelpdeskFactory) -> None:
    app = await helpdesk_factory(extra_plugins=[("imap_tables", ImapTables())])
    store = DatabaseImapStateStore(app.db)
    key = "imap://support@imap.example.org/INBOX"
    assert await store.load(key) is None

    first = ImapState(uidvalidity=4_000_000_000, last_uid=7, baseline_uid=3, failed_uids=(5,))
    await store.save(key, first)
    assert await store.load(key) == first
    second = ImapState(uidvalidity=4_000_000_000, last_uid=9, baseline_uid=3)
    await store.save(key, second)  # an update, not a second row

    assert await store.load(key) == second
    rows = await app.db.fetch("SELECT mailbox_key, failed_uids FROM email_imap_state")
    assert rows == [{"mailbox_key": key, "failed_uids": "[]"}]


async def test_the_state_survives_a_new_poller(
    imap: ImapServer, helpdesk_factory: HelpdeskFactory
) -> None:
    app = await helpdesk_factory(extra_plugins=[("imap_tables", ImapTables())])
    raws = [message(1), message(2, extra=b"X-Trouble: yes\r\n"), message(3)]
    uids = [await imap.append(raw) for raw in raws]
    recorder = Recorder(fail_on=b"X-Trouble", failures=1)
    mailbox = imap.mailbox()
    first = await ImapPoller(mailbox, recorder, DatabaseImapStateStore(app.db)).poll_once()
    assert (first.handled, first.failed) == (2, 1)
    rows = await app.db.fetch(
        "SELECT mailbox_key, uidvalidity, last_uid, failed_uids FROM email_imap_state"
    )
    assert rows == [
        {
            "mailbox_key": mailbox.key,
            "uidvalidity": first.uidvalidity,
            "last_uid": uids[2],
            "failed_uids": f"[{uids[1]}]",
        }
    ]

    # A new process: new poller and store; and a server that lost every flag meanwhile.
    await imap.command("INBOX", ("STORE", "1:*", "-FLAGS", "(\\Seen)"))
    second = await ImapPoller(mailbox, recorder, DatabaseImapStateStore(app.db)).poll_once()

    assert (second.fetched, second.handled) == (1, 1), "only the failed message again"
    assert recorder.raws == [*raws, raws[1]]
    state = await DatabaseImapStateStore(app.db).load(mailbox.key)
    assert state is not None and (state.last_uid, state.failed_uids) == (uids[2], ())


# --- through the e-mail channel (both engines) -----------------------------------------------


async def test_the_channel_polls_imap_into_tickets_and_retries_after_a_database_failure(
    imap: ImapServer, helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    mailbox = {
        "host": imap.host,
        "port": imap.port,
        "ssl": False,
        "username": USER,
        "password": PASSWORD,
        "processed_folder": "Processed",
    }
    app = await helpdesk_factory(
        plugins={"channels": ["email"]},
        plugin={
            "channels": {
                "email": {
                    "addresses": {"support@example.org": ""},
                    "acknowledge": False,
                    "imap": [mailbox],
                    "imap_interval_seconds": 60,
                }
            }
        },
    )
    await imap.create("Processed")
    await imap.append(message(1))
    await imap.append(message(2))
    # The database refuses new tickets during the first poll: that mail must stay put.
    failure = await InsertFailure.install(app.db, "ticket")
    await failure.on()
    assert await app.jobs.drain() == 1  # the poll scheduled at start-up
    assert await app.db.fetch("SELECT id FROM ticket") == []
    assert await imap.messages("INBOX") != []  # nothing was moved

    await failure.off()
    clock.advance(seconds=61)  # the next poll is due
    await app.jobs.drain()
    rows = await app.db.fetch("SELECT subject FROM ticket ORDER BY id")
    assert sorted(r["subject"] for r in rows) == ["Printer 1", "Printer 2"]
    assert await imap.messages("INBOX") == []
    assert len(await imap.messages("Processed")) == 2

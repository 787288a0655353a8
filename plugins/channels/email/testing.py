"""Test helpers for mail: a real SMTP server that keeps what it receives, and a message
builder. For our tests and for plugin authors testing against the e-mail channel."""

from __future__ import annotations

import email
import email.policy
import os
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

#: Where the real-world mail corpus lives: ``TICKETCORE_MAIL_CORPUS``, else
#: ``../shared/corpus/email`` next to the repository (our own tests read it in place).
CORPUS_ENV = "TICKETCORE_MAIL_CORPUS"


def corpus_dir(project_root: Path | None = None) -> Path:
    """The mail corpus folder (it may not exist: tests skip, naming this path)."""
    configured = os.environ.get(CORPUS_ENV)
    if configured:
        return Path(configured)
    root = project_root or Path.cwd()
    return root.resolve().parent / "shared" / "corpus" / "email"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Keeper:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), message, raw))
        return "250 Message accepted"


class MailSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in its own thread) keeping every message:
    point the channel's outbound ``smtp`` at ``sink.port``."""

    def __init__(self) -> None:
        self._keeper = _Keeper()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        """Start listening."""
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received, in order."""
        return [m for _, _, m, _ in self._keeper.received]

    def raw(self, index: int) -> bytes:
        """The bytes of one received message, as sent."""
        return self._keeper.received[index][3]

    def envelope(self, index: int) -> tuple[str, list[str]]:
        """Envelope sender and recipients of one received message."""
        sender, rcpts, _, _ = self._keeper.received[index]
        return sender, rcpts

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose envelope names ``address``."""
        return [m for _, rcpts, m, _ in self._keeper.received if address in rcpts]


def make_mail(
    *,
    sender: str = "Carol Customer <carol@customer.test>",
    to: str = "support@help.test",
    subject: str = "Printer on fire",
    body: str = "The printer on floor 2 is on fire.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    with_message_id: bool = True,
) -> bytes:
    """The bytes of a plain mail, as a mail client would send it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    if with_message_id:
        message["Message-ID"] = message_id or make_msgid(domain="customer.test")
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
    if references:
        message["References"] = " ".join(f"<{r.strip('<>')}>" for r in references)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, data in attachments or []:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()

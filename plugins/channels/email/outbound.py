"""Mail we send on a ticket: agent replies and acknowledgements, threaded for mail clients.

Every message carries our own Message-ID (``ids.own_message_id``: stable per entry, so a
retried send keeps its id), ``In-Reply-To`` the customer's last message and ``References``
the thread's known ids, the subject token ``[#123]``, and the ticket's reply address in
``Reply-To``. Automatic mail (acknowledgements) is marked ``Auto-Submitted: auto-replied``
(RFC 3834), ``X-Auto-Response-Suppress: All`` and ``X-Loop`` so that robots do not answer
it; agent replies are written by a person and carry none of those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import aiosmtplib
import msgspec

from ticketcore.plugins.channels.email.ids import subject_with_token

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|réf|ref|tr|fw|fwd)\s*(\[\d+\])?\s*:\s*)+", re.I)
#: References kept on outbound mail: the first and the latest, as RFC 5322 suggests trimming.
MAX_REFERENCES = 20


class SmtpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where outbound mail is handed over (``[plugin.channels.email.smtp]``)."""

    host: str = "localhost"
    port: int = 25
    #: Implicit TLS (port 465).
    use_tls: bool = False
    #: STARTTLS after connecting (port 587).
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class OutboundAttachment:
    """A file to attach."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Thread:
    """What a message needs to stay in its thread."""

    #: The id of the message this one answers (the customer's last), if known.
    in_reply_to: str | None
    #: Known ids of the thread, oldest first.
    references: list[str]


def reply_subject(subject: str, number: int) -> str:
    """``Re: <subject> [#123]``, without piling up prefixes."""
    bare = _REPLY_PREFIX.sub("", subject).strip() or "(no subject)"
    return subject_with_token(f"Re: {bare}", number)


def _angle(message_id: str) -> str:
    return f"<{message_id}>"


def _thread_headers(message: EmailMessage, thread: Thread) -> None:
    refs = [r for r in thread.references if r]
    if thread.in_reply_to and thread.in_reply_to not in refs:
        refs.append(thread.in_reply_to)
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
    if thread.in_reply_to:
        message["In-Reply-To"] = _angle(thread.in_reply_to)
    if refs:
        message["References"] = " ".join(_angle(r) for r in refs)


def build_message(
    *,
    from_address: str,
    from_name: str | None,
    to: str,
    to_name: str | None,
    reply_to: str,
    subject: str,
    message_id: str,
    thread: Thread,
    text: str,
    html: str | None,
    date: datetime,
    attachments: list[OutboundAttachment] | None = None,
    automatic: bool = False,
    loop_token: str | None = None,
) -> EmailMessage:
    """One outbound mail, ready for SMTP."""
    message = EmailMessage()
    message["From"] = formataddr((from_name, from_address)) if from_name else from_address
    message["To"] = formataddr((to_name, to)) if to_name else to
    message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = _angle(message_id)
    _thread_headers(message, thread)
    if automatic:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
        if loop_token:
            message["X-Loop"] = loop_token
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for item in attachments or []:
        maintype, _, subtype = item.content_type.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename
        )
    return message


class MailNotDelivered(RuntimeError):
    """The SMTP server refused a recipient: the sending job fails and is retried."""


class MailSender:
    """Hands messages to the configured SMTP server; any failure raises, so the job that
    called it is retried with backoff."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Send one message to ``recipients`` with envelope sender ``sender``."""
        s = self.settings
        errors, _response = await aiosmtplib.send(
            message,
            sender=sender,
            recipients=recipients,
            hostname=s.host,
            port=s.port,
            use_tls=s.use_tls,
            start_tls=s.starttls,
            username=s.username,
            password=s.password,
            timeout=s.timeout,
        )
        if errors:
            refused = ", ".join(
                f"{addr}: {resp.code} {resp.message}" for addr, resp in errors.items()
            )
            raise MailNotDelivered(f"recipients refused: {refused}")

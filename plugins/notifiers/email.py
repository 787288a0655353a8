"""E-mail: send notifications by SMTP, bodies rendered from Jinja2 templates per kind and
language.

One message is sent per recipient (recipients never see each other's addresses), all in one
SMTP session. Every message carries ``Auto-Submitted: auto-generated`` (RFC 3834) and
``X-Auto-Response-Suppress: All`` so that auto-responders do not answer it, and a
``Message-ID`` derived from the notification's idempotency key and the recipient: a retry sends
the same Message-ID, so a mail client shows a duplicate only once.

Templates are plain text (no HTML escaping), looked up in order, first found wins:

1. ``<templates_dir>/<lang>/<kind>.txt``, then the shipped ``templates/<lang>/<kind>.txt``;
2. ``<templates_dir>/<lang>/default.txt``, then the shipped ``templates/<lang>/default.txt``;

for ``lang`` = ``data["language"]`` when the notification gives one (e.g. the customer's),
then the configured ``language``, then ``en``. English and French are shipped for the kinds
``ticket_created``, ``agent_reply``, ``status_changed``, ``ticket_resolved``,
``ticket_closed``, ``sla_warning``, ``sla_breach`` and ``default``. A template's first line
may be ``Subject: ...``: it then gives the subject (else the notification's subject is used).
Templates see ``subject``, ``body``, ``kind``, ``recipient``, ``recipients``, ``ticket_id``,
``ticket_number`` (``data["ticket_number"]`` or ``#<id>``), ``ticket_url``, ``language``,
``notification``, ``data``, and every key of ``data`` at top level (e.g. ``survey_url``,
``status``, ``due_at``, ``signature``)::

    [plugins]
    notifiers = ["email"]

    [plugin.notifiers.email]
    host = "smtp.example.org"
    port = 587
    starttls = true
    username = "helpdesk"
    password = { env = "TICKETCORE_SMTP_PASSWORD" }
    from_address = "support@example.org"
    from_name = "Example Support"
    language = "fr"
    templates_dir = "/etc/ticketcore/mail-templates"   # optional overrides

A refused recipient, an SMTP error or a connection failure fails the notifier, and the job
worker retries it with backoff; recipients already accepted are not sent to again by this
process.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
import msgspec

from ticketcore import Notification, hookimpl
from ticketcore.plugins.channels.email.ids import own_message_id

log = logging.getLogger("ticketcore.notifiers.email")

#: The templates shipped with the plugin.
TEMPLATES = Path(__file__).with_name("templates")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_ACKED_MAX = 10_000


class MailNotSent(Exception):
    """One or more recipients were refused: the job worker retries the notifier."""


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.notifiers.email]``."""

    #: The sender address (envelope and ``From``).
    from_address: str
    #: Display name in ``From``.
    from_name: str | None = None
    #: Optional ``Reply-To`` address (e.g. the mailbox the email channel reads).
    reply_to: str | None = None
    host: str = "localhost"
    #: Default: 465 with ``tls``, 587 with ``starttls``, else 25.
    port: int | None = None
    username: str | None = None
    password: str | None = None
    #: Upgrade the connection with STARTTLS (required when true).
    starttls: bool = False
    #: Connect with implicit TLS (SMTPS).
    tls: bool = False
    validate_certs: bool = True
    timeout_seconds: float = 30
    #: A folder of overriding templates (``<lang>/<kind>.txt``), searched before the shipped.
    templates_dir: str | None = None
    #: Language of the templates when the notification does not name one.
    language: str = "en"
    #: Notification kinds to send; empty sends every kind.
    kinds: list[str] = []


class RenderedMail(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered notification for one recipient."""

    subject: str
    body: str
    template: str


class Email:
    """Sends each notification to its recipients by SMTP, from per-language templates."""

    def __init__(self, config: Config) -> None:
        self.config = config
        folders = [config.templates_dir] if config.templates_dir else []
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*folders, str(TEMPLATES)], encoding="utf-8"),
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.domain = config.from_address.rpartition("@")[2] or "ticketcore.invalid"
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()

    def template_names(self, notification: Notification) -> list[str]:
        """The template names tried for ``notification``, most specific first."""
        wanted = notification.data.get("language")
        languages = [
            lang
            for lang in dict.fromkeys([wanted, self.config.language, "en"])
            if isinstance(lang, str) and _SAFE_NAME.match(lang)
        ]
        kinds = [notification.kind] if _SAFE_NAME.match(notification.kind) else []
        return [f"{lang}/{kind}.txt" for lang in languages for kind in [*kinds, "default"]]

    def render(self, notification: Notification, recipient: str) -> RenderedMail:
        """Subject and body of the message to ``recipient``."""
        template = self.env.select_template(self.template_names(notification))
        data = notification.data
        reference = data.get("ticket_number") or (
            f"#{notification.ticket_id}" if notification.ticket_id is not None else None
        )
        context: dict[str, Any] = {
            **data,
            "notification": notification,
            "data": data,
            "kind": notification.kind,
            "subject": notification.subject,
            "body": notification.body,
            "recipient": recipient,
            "recipients": notification.recipients,
            "ticket_id": notification.ticket_id,
            "ticket_number": reference,
            "ticket_url": data.get("ticket_url"),
            "language": template.name.split("/")[0] if template.name else None,
        }
        text = template.render(context)
        subject = notification.subject
        first, _, rest = text.partition("\n")
        if first.startswith("Subject:"):
            subject = first.removeprefix("Subject:")
            text = rest.lstrip("\n")
        return RenderedMail(
            subject=" ".join(subject.split()),
            body=text.rstrip() + "\n",
            template=template.name or "?",
        )

    def message_id(self, notification: Notification, recipient: str) -> str:
        """A Message-ID unique to this notification and recipient, stable across retries.

        With ``data["ticket_key"]`` it names the ticket the way the e-mail channel's own mail
        does (``tc.<key>.<part>@<domain>``), so a reply threads on the ticket by
        ``In-Reply-To`` when the channel uses the same domain.
        """
        digest = hashlib.sha256(
            f"{notification.idempotency_key}\0{recipient.lower()}".encode()
        ).hexdigest()[:32]
        ticket_key = notification.data.get("ticket_key")
        if isinstance(ticket_key, str) and ticket_key:
            return f"<{own_message_id(ticket_key, f'n{digest[:20]}', self.domain)}>"
        return f"<notify.{digest}@{self.domain}>"

    def message(self, notification: Notification, recipient: str) -> EmailMessage:
        """The e-mail sent to ``recipient``."""
        mail = self.render(notification, recipient)
        message = EmailMessage()
        message["From"] = formataddr((self.config.from_name or "", self.config.from_address))
        message["To"] = recipient
        if self.config.reply_to:
            message["Reply-To"] = self.config.reply_to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(time.time(), localtime=False, usegmt=True)
        message["Message-ID"] = self.message_id(notification, recipient)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["X-TicketCore-Notification"] = notification.kind
        if notification.ticket_id is not None:
            message["X-TicketCore-Ticket"] = str(notification.ticket_id)
        message.set_content(mail.body, charset="utf-8")
        return message

    def _port(self) -> int:
        if self.config.port is not None:
            return self.config.port
        return 465 if self.config.tls else 587 if self.config.starttls else 25

    @hookimpl
    async def notify(self, notification: Notification) -> None:
        """Send the notification to each recipient not yet accepted; raise on any failure."""
        if self.config.kinds and notification.kind not in self.config.kinds:
            return
        key = notification.idempotency_key
        todo = [
            r for r in dict.fromkeys(notification.recipients) if (key, r.lower()) not in self._acked
        ]
        if not todo:
            return
        messages = [(r, self.message(notification, r)) for r in todo]  # template errors first
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=self._port(),
            use_tls=config.tls,
            start_tls=config.starttls,
            validate_certs=config.validate_certs,
            timeout=config.timeout_seconds,
            username=config.username,
            password=config.password,
        )
        failed: list[str] = []
        start = time.perf_counter()
        async with smtp:
            for recipient, message in messages:
                try:
                    await smtp.send_message(
                        message, sender=config.from_address, recipients=[recipient]
                    )
                except aiosmtplib.SMTPResponseException as exc:
                    log.warning("notification %s to %s refused: %s", key, recipient, exc)
                    failed.append(f"{recipient}: {exc.code} {exc.message}")
                    await smtp.rset()
                    continue
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    reasons = ", ".join(f"{r.code} {r.message}" for r in exc.recipients)
                    log.warning("notification %s to %s refused: %s", key, recipient, reasons)
                    failed.append(f"{recipient}: {reasons or 'refused'}")
                    await smtp.rset()
                    continue
                self._acked[(key, recipient.lower())] = None
                while len(self._acked) > _ACKED_MAX:
                    self._acked.popitem(last=False)
                log.info(
                    "sent %s (%s) to %s as %s",
                    key,
                    notification.kind,
                    recipient,
                    message["Message-ID"],
                )
        log.info(
            "notification %s: %d of %d message(s) sent in %.1f ms",
            key,
            len(messages) - len(failed),
            len(messages),
            (time.perf_counter() - start) * 1000,
        )
        if failed:
            raise MailNotSent(f"{len(failed)} recipient(s) failed: {'; '.join(failed)}")


def create(config: Config) -> Email:
    """Entry point factory: check the settings and template folders; no network I/O."""
    if config.tls and config.starttls:
        raise ValueError("choose tls (implicit TLS) or starttls, not both")
    if (config.username is None) != (config.password is None):
        raise ValueError("give both username and password, or neither")
    if "@" not in config.from_address:
        raise ValueError(f"from_address {config.from_address!r} is not an e-mail address")
    if config.templates_dir and not Path(config.templates_dir).is_dir():
        raise ValueError(f"templates_dir {config.templates_dir!r} is not a folder")
    if not _SAFE_NAME.match(config.language):
        raise ValueError(f"language {config.language!r} is not a language code")
    folders = [Path(config.templates_dir)] if config.templates_dir else []
    if not any((folder / config.language).is_dir() for folder in [*folders, TEMPLATES]):
        raise ValueError(f"no templates for language {config.language!r}")
    plugin = Email(config)
    for folder in folders:  # an override with a syntax error stops start-up, not each mail
        for path in sorted(folder.glob("*/*.txt")):
            name = path.relative_to(folder).as_posix()
            try:
                plugin.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"template {name}, line {exc.lineno}: {exc.message}") from exc
    return plugin

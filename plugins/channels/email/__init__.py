"""E-mail channel: mail in (SMTP server, IMAP polling, files) becomes tickets and messages;
agent replies and acknowledgements go out by SMTP through the outbox, threaded.

Enable it and name the addresses it receives for, each with the team (slug) its tickets go
to (``""`` for none)::

    [plugins]
    channels = ["email"]

    [plugin.channels.email]
    from_name = "Example Support"
    [plugin.channels.email.addresses]
    "support@example.org" = ""
    "billing@example.org" = "billing"
    [plugin.channels.email.smtp]            # outbound
    host = "smtp.example.org"
    port = 587
    starttls = true
    username = "helpdesk"
    password = { env = "TICKETCORE_SMTP_PASSWORD" }
    [plugin.channels.email.smtp_server]     # inbound SMTP, run by `ticketcore serve`
    host = "0.0.0.0"
    port = 2525
    [[plugin.channels.email.imap]]          # inbound IMAP, polled by the job worker
    host = "imap.example.org"
    username = "support@example.org"
    password = { env = "TICKETCORE_IMAP_PASSWORD" }
    processed_folder = "Processed"

``ticketcore mail ingest PATH`` reads a file, a Maildir or an mbox through the same intake.
See ``intake.py`` for what happens to a mail, ``outbound.py`` for what we send, ``ids.py``
for how our mail is recognised when it comes back.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import jinja2.sandbox
import msgspec
from piccolo.table import Table

from ticketcore import Ticket, hookimpl
from ticketcore.domain.models import Entry
from ticketcore.errors import ConfigError
from ticketcore.plugins.channels.email.ids import (
    base_address,
    own_message_id,
    reply_address,
)
from ticketcore.plugins.channels.email.imap import IMAP_TABLES, ImapMailbox
from ticketcore.plugins.channels.email.intake import (
    UNKNOWN_SENDER,
    IntakePolicy,
    IntakeResult,
    MailIntake,
)
from ticketcore.plugins.channels.email.outbound import (
    MailSender,
    OutboundAttachment,
    SmtpSettings,
    Thread,
    build_message,
    reply_subject,
)
from ticketcore.plugins.channels.email.parse import ParseLimits
from ticketcore.plugins.channels.email.smtp_intake import (
    SmtpIntakeServer,
    SmtpServerSettings,
    accepts_for,
)
from ticketcore.plugins.channels.email.tables import EMAIL_TABLES

if TYPE_CHECKING:
    from ticketcore.app import App
    from ticketcore.jobs import JobRecord

log = logging.getLogger("ticketcore.channels.email")

DEFAULT_ACKNOWLEDGEMENT = """Hello {{ name }},

we have received your request "{{ subject }}" and opened ticket {{ number }}.
Reply to this e-mail to add anything; keep {{ number }} in the subject.

{{ signature }}
"""


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.channels.email]``."""

    #: Our addresses, each mapped to the slug of the team its new tickets go to ("" none).
    addresses: dict[str, str]
    #: Domain of our Message-IDs; defaults to the domain of the first address.
    message_id_domain: str | None = None
    #: Display name on outbound mail.
    from_name: str | None = None
    #: Outbound SMTP.
    smtp: SmtpSettings = msgspec.field(default_factory=SmtpSettings)
    #: Inbound SMTP server, started by ``ticketcore serve``; absent: no listener.
    smtp_server: SmtpServerSettings | None = None
    #: IMAP mailboxes polled by the job worker.
    imap: list[ImapMailbox] = []
    imap_interval_seconds: float = 60.0
    #: Send "we received your request" for each new ticket opened by mail.
    acknowledge: bool = True
    #: Jinja2 text of the acknowledgement (sees name, subject, number, signature).
    acknowledgement_template: str = DEFAULT_ACKNOWLEDGEMENT
    signature: str = ""
    #: Automatic replies to one address per hour; more are not sent (loop and flood guard).
    autoreply_limit_per_hour: int = 5
    #: List and bulk mail (``Precedence: bulk/list/junk``, ``List-Id``): "ignore" drops it
    #: (logged in ``email_inbound``); "ticket" opens one, never acknowledged.
    bulk_policy: Literal["ticket", "ignore"] = "ignore"
    #: One attachment larger than this is not kept (named in the message instead).
    max_attachment_bytes: int = 10 * 1024 * 1024
    #: ``X-Loop`` value on our automatic mail; defaults to ``ticketcore@<domain>``.
    loop_token: str | None = None

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("addresses: give at least one address this helpdesk receives for")
        for address in self.addresses:
            if "@" not in address or address != base_address(address):
                raise ValueError(
                    f"addresses: {address!r} must be a plain lower-case address like "
                    "'support@example.org'"
                )
        if self.autoreply_limit_per_hour < 0:
            raise ValueError("autoreply_limit_per_hour must be 0 or more")

    @property
    def domain(self) -> str:
        """The Message-ID domain."""
        return self.message_id_domain or next(iter(self.addresses)).partition("@")[2]


class EmailChannel:
    """The plugin object: intake, outbound replies and acknowledgements."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sender = MailSender(config.smtp)
        self.loop_token = config.loop_token or f"ticketcore@{config.domain}"
        self.app: App | None = None
        self.intake: MailIntake | None = None
        self.smtp_server: SmtpIntakeServer | None = None
        self._ack = jinja2.sandbox.SandboxedEnvironment(autoescape=False).from_string(
            config.acknowledgement_template
        )

    # --- lifecycle --------------------------------------------------------------------------

    @hookimpl
    def register_tables(self) -> list[type[Table]]:
        """The intake log, the auto-reply log and the IMAP state."""
        return [*EMAIL_TABLES, *IMAP_TABLES]

    @hookimpl
    def register_jobs(self) -> dict[str, Any]:
        """Acknowledgements and IMAP polls run as jobs (retried, one worker each)."""
        return {"email.acknowledge": self._acknowledge_job, "email.poll_imap": self._poll_job}

    @hookimpl
    async def startup(self, app: App) -> None:
        """Build the intake; start the SMTP listener in ``serve``."""
        self.app = app
        self.intake = MailIntake(app, self._policy())
        if self.config.imap:
            await self._schedule_poll(app, app.clock.now())
        if self.config.smtp_server is not None and app.listeners:
            await self.start_smtp_server()

    @hookimpl
    async def shutdown(self, app: App) -> None:
        """Stop the SMTP listener."""
        if self.smtp_server is not None:
            await self.smtp_server.stop()
            self.smtp_server = None

    def _policy(self) -> IntakePolicy:
        return IntakePolicy(
            addresses={a: slug or None for a, slug in self.config.addresses.items()},
            domains=frozenset({self.config.domain.lower()}),
            loop_tokens=frozenset({self.loop_token.lower()}),
            bulk_policy=self.config.bulk_policy,
            limits=ParseLimits(max_attachment_bytes=self.config.max_attachment_bytes),
            acknowledge=self.config.acknowledge,
        )

    async def start_smtp_server(self) -> SmtpIntakeServer:
        """Start the inbound SMTP server (``serve`` does this; tests call it directly)."""
        settings = self.config.smtp_server or SmtpServerSettings()
        server = SmtpIntakeServer(settings, self.ingest, accepts_for(list(self.config.addresses)))
        await server.start()
        self.smtp_server = server
        return server

    async def ingest(
        self, raw: bytes, *, source: str = "", recipients: list[str] | None = None
    ) -> IntakeResult:
        """Handle one inbound mail (see ``intake.MailIntake.ingest``)."""
        if self.intake is None:
            raise RuntimeError("the e-mail channel has not started")
        return await self.intake.ingest(raw, source=source, recipients=recipients or [])

    # --- outbound ---------------------------------------------------------------------------

    @hookimpl
    async def deliver_reply(self, ticket: Ticket, reply: Entry, channel: str) -> bool | None:
        """Send an agent's public reply on an e-mail ticket to its requester."""
        if channel != "email":
            return None
        app = self._started()
        to = ticket.requester.email
        if not to or to == UNKNOWN_SENDER:
            log.warning("ticket %s: requester has no e-mail address; reply not sent", ticket.id)
            return True
        message_id = own_message_id(ticket.key, f"e{reply.id}", self.config.domain)
        # Stored before sending: a reply to it threads by lookup too, and a retry keeps it.
        await app.db.fetch(
            "UPDATE entry SET message_id = {} WHERE id = {} AND message_id IS NULL",
            message_id,
            reply.id,
        )
        address = await self._ticket_address(ticket.id)
        store = app.tickets.store
        attachments = [
            OutboundAttachment(a.filename, a.content_type, store.read(a.sha256))
            for a in reply.attachments
        ]
        message = build_message(
            from_address=address,
            from_name=self._from_name(reply.author.name),
            to=to,
            to_name=ticket.requester.name,
            reply_to=reply_address(address, ticket.key),
            subject=reply_subject(ticket.subject, ticket.id),
            message_id=message_id,
            thread=await self._thread(ticket.id, exclude=message_id),
            text=reply.body_text,
            html=reply.body_html,
            date=app.clock.now(),
            attachments=attachments,
        )
        await self.sender.send(message, sender=address, recipients=[to])
        return True

    def _from_name(self, agent: str | None) -> str | None:
        base = self.config.from_name
        if agent and base:
            return f"{agent} ({base})"
        return base or agent

    async def _thread(self, ticket_id: int, exclude: str | None = None) -> Thread:
        """The thread's known Message-IDs, and the customer's last one to answer."""
        app = self._started()
        rows = await app.db.fetch(
            "SELECT kind, message_id FROM entry WHERE ticket = {} AND message_id IS NOT NULL "
            "AND kind IN ('message_in', 'message_out') ORDER BY id",
            ticket_id,
        )
        ids = [
            (row["kind"], row["message_id"])
            for row in rows
            if not row["message_id"].startswith("sha256:") and row["message_id"] != exclude
        ]
        last_in = next((m for kind, m in reversed(ids) if kind == "message_in"), None)
        return Thread(in_reply_to=last_in, references=[m for _, m in ids])

    async def _ticket_address(self, ticket_id: int) -> str:
        """The address the ticket's first mail came to (else our first address)."""
        rows = await self._started().db.fetch(
            "SELECT recipient FROM email_inbound WHERE ticket_id = {} AND recipient IS NOT NULL "
            "ORDER BY received_at LIMIT 1",
            ticket_id,
        )
        return rows[0]["recipient"] if rows else next(iter(self.config.addresses))

    # --- jobs -------------------------------------------------------------------------------

    async def _acknowledge_job(self, app: App, job: JobRecord) -> None:
        """Send the acknowledgement of a new ticket, unless the rate limit says no."""
        ticket = await app.tickets.snapshot(job.payload["ticket_id"])
        to = ticket.requester.email
        if not to or to == UNKNOWN_SENDER:
            return
        now = app.clock.now()
        rows = await app.db.fetch(
            "SELECT COUNT(*) AS n FROM email_autoreply WHERE address = {} AND sent_at > {}",
            to,
            now - timedelta(hours=1),
        )
        if rows[0]["n"] >= self.config.autoreply_limit_per_hour:
            log.info("ticket %s: acknowledgement to %s suppressed (rate limit)", ticket.id, to)
            job.payload["suppressed"] = "rate limit"
            return
        address = job.payload.get("address") or next(iter(self.config.addresses))
        in_reply_to = job.payload.get("in_reply_to")
        message = build_message(
            from_address=address,
            from_name=self.config.from_name,
            to=to,
            to_name=ticket.requester.name,
            reply_to=reply_address(address, ticket.key),
            subject=reply_subject(ticket.subject, ticket.id),
            message_id=own_message_id(ticket.key, "ack", self.config.domain),
            thread=Thread(in_reply_to=in_reply_to, references=[]),
            text=self._ack.render(
                name=ticket.requester.name,
                subject=ticket.subject,
                number=ticket.number,
                signature=self.config.signature or self.config.from_name or "",
            ),
            html=None,
            date=now,
            automatic=True,
            loop_token=self.loop_token,
        )
        await self.sender.send(message, sender=address, recipients=[to])
        await app.db.fetch(
            "INSERT INTO email_autoreply (address, ticket_id, sent_at) VALUES ({}, {}, {})",
            to,
            ticket.id,
            now,
        )

    async def _schedule_poll(self, app: App, at: Any) -> None:
        """Queue the next IMAP poll; the slot in its key keeps one poll per interval however
        many processes schedule it."""
        interval = max(self.config.imap_interval_seconds, 1.0)
        slot = int(at.timestamp() // interval)
        await app.jobs.enqueue(
            "email.poll_imap", {"slot": slot}, run_at=at, key=f"email.poll_imap:{slot}"
        )
        app.jobs.wake()

    async def _poll_job(self, app: App, job: JobRecord) -> None:
        """Poll every configured mailbox once, then schedule the next poll."""
        from ticketcore.plugins.channels.email.imap import (
            DatabaseImapStateStore,
            ImapPoller,
            ImapPollError,
        )

        store = DatabaseImapStateStore(app.db, now=app.clock.now)
        errors: list[str] = []
        try:
            for mailbox in self.config.imap:
                # One unreachable mailbox (a wrong password) must not stop the others.
                try:
                    report = await ImapPoller(mailbox, self._imap_ingest, store).poll_once()
                except ImapPollError as exc:
                    report = exc.report
                    errors.append(f"{mailbox.key}: {exc}")
                job.payload["reports"] = [
                    *job.payload.get("reports", []),
                    msgspec.to_builtins(report),
                ]
                errors += report.errors
        finally:
            interval = timedelta(seconds=max(self.config.imap_interval_seconds, 1.0))
            await self._schedule_poll(app, app.clock.now() + interval)
        if errors:
            log.warning("IMAP poll: %s", "; ".join(errors))

    async def _imap_ingest(self, raw: bytes, *, source: str) -> IntakeResult:
        return await self.ingest(raw, source=source)

    def _started(self) -> App:
        if self.app is None:
            raise RuntimeError("the e-mail channel has not started")
        return self.app


def create(config: Config) -> EmailChannel:
    """Entry point: the e-mail channel plugin."""
    return EmailChannel(config)


def channel_of(app: App) -> EmailChannel:
    """The running e-mail channel of ``app`` (for the CLI and tests)."""
    plugin = app.pm.get_plugin("channels.email")
    if not isinstance(plugin, EmailChannel):
        raise ConfigError(['the e-mail channel is not enabled: add "email" to [plugins] channels'])
    return plugin

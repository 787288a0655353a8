"""From raw mail bytes to a ticket, a threaded message, a system note, or nothing.

``MailIntake.ingest`` is the one path every intake (SMTP server, IMAP poller, ``ticketcore
mail ingest``) goes through. It returns only once the outcome is committed, and raises when
it is not, so the caller can answer ``451`` or leave the mail in its mailbox for a retry:

1. parse (never raises) and take the idempotency key: the Message-ID, else a content hash;
2. a key already on record is a duplicate: nothing is written twice;
3. screen: bounces, auto-replies, reports, loops and (by policy) list mail never open a
   ticket; those about a message we sent are recorded on its ticket as a system note;
4. thread (``threads.py``): our own Message-IDs in ``In-Reply-To``/``References``, other
   known Message-IDs, the ``+token`` reply address, then the ``[#123]`` subject token; a
   candidate is kept only when the sender belongs to the ticket (requester, earlier
   correspondent or agent);
5. write the ticket or the message (attachments stored first), then log the outcome and
   queue the acknowledgement in one transaction.

Two deliveries of one mail racing each other are stopped by the unique index on
``entry.message_id``: the loser gets ``DuplicateMessage`` and reports a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ticketcore.domain.commands import LinkRequest, NewEntry, NewTicket, RequesterInput
from ticketcore.domain.enums import LinkKind, Role, Status
from ticketcore.domain.models import Contact, Principal, Ticket
from ticketcore.errors import DuplicateMessage, InvalidTransition, ValidationFailed
from ticketcore.plugins.channels.email.ids import (
    base_address,
    ticket_key_of,
)
from ticketcore.plugins.channels.email.parse import ParsedMail, ParseLimits, parse_mail
from ticketcore.plugins.channels.email.screen import MailKind, ScreenResult, screen_mail
from ticketcore.plugins.channels.email.threads import ThreadFinder, inbound_message
from ticketcore.services.attachments import StoredFile
from ticketcore.services.directory import normalise_email

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.channels.email")

Outcome = Literal["created", "threaded", "recorded", "dropped", "duplicate"]

#: Who the channel acts as in the history.
CHANNEL_PRINCIPAL = Principal(id=0, name="channels.email", email="", role=Role.ADMIN)
CHANNEL_ACTOR = CHANNEL_PRINCIPAL.actor
#: Requester of a mail whose sender cannot be read at all: the mail is kept, not dropped.
UNKNOWN_SENDER = "unknown-sender@invalid.invalid"
#: Screened mail about one of our tickets that is worth showing the agent there.
_RECORDED_KINDS = {MailKind.BOUNCE, MailKind.BOUNCE_DELAYED, MailKind.AUTO_REPLY}
_NO_ACK_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply")


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What became of one inbound mail."""

    outcome: Outcome
    kind: str
    reason: str
    dedupe_key: str
    ticket_id: int | None = None
    entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    """The intake's settings, resolved from the plugin config at startup."""

    #: Our addresses (lower-case, without ``+token``) and the slug of the team each routes
    #: new tickets to (None: no team, routing plugins decide).
    addresses: dict[str, str | None]
    #: Domains of our Message-IDs.
    domains: frozenset[str]
    #: ``X-Loop`` values that mark mail we sent.
    loop_tokens: frozenset[str]
    #: List/bulk mail: "ticket" opens one (never acknowledged), "ignore" drops it.
    bulk_policy: Literal["ticket", "ignore"] = "ignore"
    limits: ParseLimits = field(default_factory=ParseLimits)
    acknowledge: bool = True


class _KeyLocks:
    """One asyncio lock per idempotency key in flight: the same mail delivered twice at once
    in this process is handled in turn (across processes the unique index decides)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: str) -> _Held:
        """A context manager holding the lock of ``key``."""
        return _Held(self, key)


class _Held:
    def __init__(self, owner: _KeyLocks, key: str) -> None:
        self.owner, self.key = owner, key

    async def __aenter__(self) -> None:
        lock, users = self.owner._locks.get(self.key, (asyncio.Lock(), 0))
        self.owner._locks[self.key] = (lock, users + 1)
        await lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        lock, users = self.owner._locks[self.key]
        lock.release()
        if users <= 1:
            del self.owner._locks[self.key]
        else:
            self.owner._locks[self.key] = (lock, users - 1)


class MailIntake:
    """Turns inbound mail into tickets and messages for one application."""

    def __init__(self, app: App, policy: IntakePolicy) -> None:
        self.app = app
        self.db = app.db
        self.policy = policy
        self._locks = _KeyLocks()
        self._teams: dict[str, int] = {}
        self.threads = ThreadFinder(app, policy.domains, policy.addresses)

    # --- the pipeline -----------------------------------------------------------------------

    async def ingest(
        self, raw: bytes, *, source: str = "", recipients: Sequence[str] = ()
    ) -> IntakeResult:
        """Handle one mail (see the module docstring); raises when nothing could be committed."""
        mail = parse_mail(raw, self.policy.limits)
        fingerprint = content_fingerprint(mail, raw)
        key = mail.message_id or f"sha256:{fingerprint}"
        async with self._locks.hold(key):
            known = await self._known(key, fingerprint)
            if known == "reused":
                # Another message under the same Message-ID (broken mailers, copied test
                # fixtures): it is not a duplicate, so it gets a key of its own.
                key = f"{key}#{fingerprint[:16]}"
                known = await self._known(key, fingerprint)
            if isinstance(known, IntakeResult):
                return known
            verdict = await self._screen(mail)
            recipient = self._our_recipient(mail, recipients)
            try:
                if verdict.creates_ticket or (
                    verdict.kind is MailKind.BULK and self.policy.bulk_policy == "ticket"
                ):
                    result = await self._accept(mail, key, verdict, recipients, recipient)
                else:
                    result = await self._screened_out(mail, key, verdict)
            except DuplicateMessage:
                # Another process committed the same mail between our check and our write.
                found = await self._known(key, fingerprint)
                if not isinstance(found, IntakeResult):
                    raise
                return found
            await self._log(mail, fingerprint, result, source, recipient)
        if result.outcome in ("created", "threaded", "recorded"):
            log.info("%s: %s %s ticket %s", source, result.outcome, result.kind, result.ticket_id)
        self.app.jobs.wake()
        return result

    async def _known(self, key: str, fingerprint: str) -> IntakeResult | Literal["reused"] | None:
        """The earlier outcome of a mail with this key if it was handled before; "reused" when
        the key belongs to a mail with other content."""
        rows = await self.db.fetch(
            "SELECT kind, outcome, reason, ticket_id, entry_id, fingerprint FROM email_inbound "
            "WHERE dedupe_key = {}",
            key,
        )
        if rows:
            row = rows[0]
            if row["fingerprint"] and row["fingerprint"] != fingerprint:
                return "reused"
            return IntakeResult(
                "duplicate",
                row["kind"],
                f"already {row['outcome']}",
                key,
                row["ticket_id"],
                row["entry_id"],
            )
        rows = await self.db.fetch("SELECT id, ticket FROM entry WHERE message_id = {}", key)
        if rows:
            # Committed, but the log (and maybe the acknowledgement) did not follow: a crash
            # or a failure after the ticket's commit. Finish that part now.
            ticket_id, entry_id = rows[0]["ticket"], rows[0]["id"]
            first = await self.db.fetch(
                "SELECT MIN(id) AS first FROM entry WHERE ticket = {}", ticket_id
            )
            created = first[0]["first"] == entry_id
            await self._finish_late(key, ticket_id, entry_id, created)
            return IntakeResult(
                "duplicate", "normal", "already on record", key, ticket_id, entry_id
            )
        return None

    async def _screen(self, mail: ParsedMail) -> ScreenResult:
        sender = mail.sender_email or ""
        if sender and base_address(sender) in self.policy.addresses:
            # Mail from one of our own addresses answering itself is how loops start.
            return ScreenResult(
                kind=MailKind.LOOP,
                reason=f"sent from our own address {sender}",
                original_message_ids=[*mail.in_reply_to, *mail.references],
                failed_recipients=[],
            )
        verdict = screen_mail(
            mail,
            is_own_message_id=lambda mid: ticket_key_of(mid, self.policy.domains) is not None,
            loop_tokens=self.policy.loop_tokens,
        )
        if verdict.creates_ticket and self.app.hooks.implementers("screen_inbound"):
            # Third-party screeners (spam filters, allow lists) see the normalised message.
            extra = await self.app.hooks.first_result(
                "screen_inbound", message=inbound_message(mail)
            )
            if extra is not None and extra.verdict != "accept":
                return ScreenResult(
                    kind=MailKind.LOOP if extra.verdict == "reject" else MailKind.BULK,
                    reason=f"screen_inbound: {extra.reason}",
                    original_message_ids=[],
                    failed_recipients=[],
                )
        return verdict

    def _our_recipient(self, mail: ParsedMail, recipients: Sequence[str]) -> str | None:
        """Which of our addresses this mail was sent to (envelope first, then headers)."""
        for address in [*recipients, *mail.delivered_to, *mail.to, *mail.cc]:
            base = base_address(address)
            if base in self.policy.addresses:
                return base
        return None

    # --- screened out -----------------------------------------------------------------------

    async def _screened_out(
        self, mail: ParsedMail, key: str, verdict: ScreenResult
    ) -> IntakeResult:
        if verdict.kind in _RECORDED_KINDS:
            ticket_id = await self.threads.ticket_of_original(verdict.original_message_ids)
            if ticket_id is not None:
                entry = await self.app.tickets.add_system_entry(
                    ticket_id,
                    _system_note(mail, verdict),
                    actor=CHANNEL_ACTOR,
                    message_id=key,
                    data={"mail_kind": verdict.kind.value, "reason": verdict.reason},
                )
                return IntakeResult(
                    "recorded", verdict.kind.value, verdict.reason, key, ticket_id, entry.id
                )
        return IntakeResult("dropped", verdict.kind.value, verdict.reason, key)

    # --- accepted ---------------------------------------------------------------------------

    async def _accept(
        self,
        mail: ParsedMail,
        key: str,
        verdict: ScreenResult,
        recipients: Sequence[str],
        recipient: str | None,
    ) -> IntakeResult:
        sender = _valid_address(mail.sender_email)
        ticket = await self.threads.target(mail, recipients, sender)
        files, notes = self._store_attachments(mail)
        if sender is None and mail.sender_email:
            notes.insert(0, f"[sender address not usable: {mail.sender_email!r}]")
        text, html = self._bodies(mail, notes)
        if ticket is not None and ticket.status is not Status.CLOSED:
            try:
                entry = await self._add_reply(ticket, mail, key, sender, text, html, files)
                return IntakeResult(
                    "threaded", verdict.kind.value, verdict.reason, key, ticket.id, entry
                )
            except InvalidTransition:
                pass  # closed meanwhile: a new ticket, linked below
        limits = self.app.settings.limits
        subject = " ".join(mail.subject.split())[: limits.max_subject_chars] or "(no subject)"
        team_id = await self._team_id(self.policy.addresses.get(recipient) if recipient else None)
        created = await self.app.tickets.create(
            CHANNEL_PRINCIPAL,
            NewTicket(
                subject=subject,
                body=text,
                body_html=html,
                requester=RequesterInput(
                    email=sender or UNKNOWN_SENDER,
                    name=(mail.sender_name or "").strip()[:200] or None,
                ),
                channel="email",
                team_id=team_id,
                message_id=key,
            ),
            files=files,
        )
        if ticket is not None:
            # A reply to a closed ticket opens a new one that points back at it.
            await self.app.tickets.link(
                CHANNEL_PRINCIPAL,
                created.id,
                LinkRequest(kind=LinkKind.RELATED, ticket_id=ticket.id),
            )
        first = await self.db.fetch("SELECT MIN(id) AS id FROM entry WHERE ticket = {}", created.id)
        return IntakeResult(
            "created", verdict.kind.value, verdict.reason, key, created.id, first[0]["id"]
        )

    async def _team_id(self, slug: str | None) -> int | None:
        """The team of an address, looked up when first needed (teams may be added later)."""
        if not slug:
            return None
        if slug not in self._teams:
            rows = await self.db.fetch("SELECT id FROM team WHERE slug = {}", slug)
            if not rows:
                # Misconfigured: the mail still becomes a ticket, routed by the plugins.
                log.warning("channels.email: no team with slug %r; ticket left unrouted", slug)
                return None
            self._teams[slug] = rows[0]["id"]
        return self._teams[slug]

    async def _add_reply(
        self,
        ticket: Ticket,
        mail: ParsedMail,
        key: str,
        sender: str | None,
        text: str,
        html: str | None,
        files: list[StoredFile],
    ) -> int:
        cmd = NewEntry(body=text, body_html=html, message_id=key)
        staff = await self.threads.staff_principal(sender) if sender else None
        if staff is not None:
            # An agent answering from their mail client: a public reply, delivered like one
            # written in the agent UI.
            entry = await self.app.tickets.add_entry(
                staff, ticket.id, cmd, internal=False, files=files
            )
            return entry.id
        contact = await self._contact_for(sender, mail.sender_name)
        entry = await self.app.tickets.add_entry(
            CHANNEL_PRINCIPAL, ticket.id, cmd, internal=False, files=files, from_contact=contact
        )
        return entry.id

    async def _contact_for(self, sender: str | None, name: str) -> Contact:
        now = self.app.clock.now()
        return await self.app.directory.ensure_contact(
            sender or UNKNOWN_SENDER, (name or "").strip()[:200] or None, None, now
        )

    def _store_attachments(self, mail: ParsedMail) -> tuple[list[StoredFile], list[str]]:
        """Store the parts the core limits allow; name the others in the message so that no
        part disappears silently."""
        limits = self.app.settings.limits
        store = self.app.tickets.store
        files: list[StoredFile] = []
        notes = [
            f"[attachment {r.filename!r} ({r.size} bytes) was not kept: {r.reason}]"
            for r in mail.rejected
        ]
        for part in mail.attachments:
            if len(part.data) > limits.max_attachment_bytes:
                notes.append(
                    f"[attachment {part.filename!r} ({len(part.data)} bytes) was not kept: "
                    f"larger than {limits.max_attachment_bytes} bytes]"
                )
            elif len(files) >= limits.max_attachments_per_entry:
                notes.append(
                    f"[attachment {part.filename!r} was not kept: more than "
                    f"{limits.max_attachments_per_entry} attachments]"
                )
            else:
                files.append(store.store(part.filename[:255], part.content_type, part.data))
        return files, notes

    def _bodies(self, mail: ParsedMail, notes: list[str]) -> tuple[str, str | None]:
        limit = self.app.settings.limits.max_body_chars
        text = mail.text
        if notes:
            text = "\n\n".join([text.rstrip(), *notes]) if text.strip() else "\n".join(notes)
        if len(text) > limit:
            text = text[: limit - 40] + "\n[... message truncated]"
        html = mail.html if mail.html and len(mail.html) <= limit else None
        return text, html

    # --- after the write --------------------------------------------------------------------

    async def _log(
        self,
        mail: ParsedMail,
        fingerprint: str,
        result: IntakeResult,
        source: str,
        recipient: str | None,
    ) -> None:
        """Record the outcome and queue the acknowledgement, together."""
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO email_inbound (dedupe_key, message_id, source, recipient, sender, "
                "subject, kind, outcome, reason, ticket_id, entry_id, size, fingerprint, "
                "received_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
                "ON CONFLICT (dedupe_key) DO NOTHING",
                result.dedupe_key[:998],
                mail.message_id[:998] if mail.message_id else None,
                source[:300],
                recipient,
                (mail.sender_email or "")[:320] or None,
                mail.subject[:300],
                result.kind,
                result.outcome,
                result.reason[:500],
                result.ticket_id,
                result.entry_id,
                mail.raw_size,
                fingerprint,
                self.app.clock.now(),
            )
            if (
                result.outcome == "created"
                and result.kind == MailKind.NORMAL.value
                and self.policy.acknowledge
                and result.ticket_id is not None
                and _may_acknowledge(mail.sender_email)
            ):
                await self.enqueue_acknowledgement(result.ticket_id, recipient, mail.message_id)

    async def enqueue_acknowledgement(
        self, ticket_id: int, recipient: str | None, in_reply_to: str | None
    ) -> None:
        """Queue the "we received your request" mail of a new ticket (once per ticket)."""
        await self.app.jobs.enqueue(
            "email.acknowledge",
            {"ticket_id": ticket_id, "address": recipient, "in_reply_to": in_reply_to},
            key=f"email.acknowledge:{ticket_id}",
        )

    async def _finish_late(self, key: str, ticket_id: int, entry_id: int, created: bool) -> None:
        """Log a mail whose ticket was committed before a failure cut the intake short."""
        rows = await self.db.fetch(
            "SELECT c.email FROM ticket t JOIN contact c ON c.id = t.requester WHERE t.id = {}",
            ticket_id,
        )
        sender = rows[0]["email"] if rows else None
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO email_inbound (dedupe_key, message_id, source, sender, kind, "
                "outcome, reason, ticket_id, entry_id, received_at) "
                "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
                "ON CONFLICT (dedupe_key) DO NOTHING",
                key[:998],
                None if key.startswith("sha256:") else key[:998],
                "recovered",
                sender,
                MailKind.NORMAL.value,
                "created" if created else "threaded",
                "logged after a failure",
                ticket_id,
                entry_id,
                self.app.clock.now(),
            )
            if created and self.policy.acknowledge and _may_acknowledge(sender):
                address = next(iter(self.policy.addresses), None)
                in_reply_to = None if key.startswith("sha256:") else key
                await self.enqueue_acknowledgement(ticket_id, address, in_reply_to)


def content_fingerprint(mail: ParsedMail, raw: bytes) -> str:
    """What makes two deliveries the same mail: sender, subject, date and body bytes, not the
    transport headers (each relay adds its own ``Received``) nor line-end conversions."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    body = raw[end:] if end >= 0 else b""
    digest = hashlib.sha256()
    for name in ("from", "subject", "date"):
        digest.update(mail.headers.get(name, "").encode("utf-8", "replace") + b"\0")
    digest.update(body.replace(b"\r\n", b"\n").strip())
    return digest.hexdigest()


def _valid_address(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return normalise_email(address)
    except ValidationFailed:
        return None


def _may_acknowledge(sender: str | None) -> bool:
    """Never acknowledge robots and role addresses that do not read replies."""
    if not sender or _valid_address(sender) is None:
        return False
    local = sender.partition("@")[0].lower()
    return not any(local.startswith(p) for p in _NO_ACK_LOCALPARTS)


def _system_note(mail: ParsedMail, verdict: ScreenResult) -> str:
    if verdict.kind is MailKind.AUTO_REPLY:
        head = f"Automatic reply received from {mail.sender_email or 'an unknown sender'}"
    elif verdict.kind is MailKind.BOUNCE_DELAYED:
        head = "Delivery delayed"
    else:
        head = "Delivery failed"
    lines = [
        head + (f": {', '.join(verdict.failed_recipients)}" if verdict.failed_recipients else "")
    ]
    lines.append(f"Reason: {verdict.reason}")
    if mail.subject:
        lines.append(f"Subject: {mail.subject}")
    return "\n".join(lines)


def describe(result: IntakeResult) -> dict[str, Any]:
    """A JSON-ready view of a result (CLI output, logs)."""
    return {
        "outcome": result.outcome,
        "kind": result.kind,
        "reason": result.reason,
        "ticket_id": result.ticket_id,
        "entry_id": result.entry_id,
        "key": result.dedupe_key,
    }

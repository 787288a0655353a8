"""Customer updates: keep requesters informed of their tickets, through the notifiers.

On each committed ticket event (``ticket_event``, run by the worker from the outbox) this
plugin decides whether the requester should hear about it, and if so queues one
:class:`~ticketcore.Notification` (job kind ``notify``, idempotency key
``customer_update:<event id>:<kind>``: a redelivered event never sends twice). The enabled
notifiers deliver it; the ``email`` notifier renders it from its ``<kind>.txt`` template.

=================== ======================================================================
kind                when
=================== ======================================================================
``ticket_created``  a ticket is opened: its number and where to follow it (``portal_url``);
                    not for channels that acknowledge on their own (below)
``agent_reply``     an agent's *public* reply, on channels that do not deliver replies
                    themselves (the e-mail channel mails replies on e-mail tickets)
``status_changed``  the ticket moves to a status listed in ``statuses`` (by default: waiting
                    on the customer, on hold)
``ticket_resolved`` resolved: asks the customer to confirm, with ``confirm_url`` and
                    ``reopen_url``
``ticket_closed``   closed (not merged away): with the satisfaction ``survey_url``
=================== ======================================================================

Internal notes, system entries and every other event never notify the customer; neither
does a change the customer made themselves. Each kind can be switched off for everyone
(``disabled``) and per organisation (stored in the database, set by an admin through
``PUT /api/v1/organisations/{id}/notification-preferences``; an organisation's choice wins
over the default). URLs are templates with ``{id}`` and ``{key}`` (the ticket's secret key)::

    [plugins]
    plugins = ["customer_updates"]
    notifiers = ["email"]

    [plugin.plugins.customer_updates]
    portal_url = "https://help.example.org/portal/tickets/{id}"
    survey_url = "https://help.example.org/survey/{key}"
    disabled = ["status_changed"]

``acknowledged_channels`` names the channels whose tickets are acknowledged by the channel
itself, so ``ticket_created`` is not sent twice; by default (unset) it is ``["email"]`` when
the e-mail channel is enabled with ``acknowledge = true``. ``reply_channels`` (default:
``["email"]`` when the e-mail channel is enabled) names the channels that deliver agents'
replies themselves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore import (
    Entry,
    EntryKind,
    NotFound,
    Notification,
    Status,
    Ticket,
    TicketEvent,
    hookimpl,
)

if TYPE_CHECKING:
    from ticketcore.app import App
    from ticketcore.config import Settings

log = logging.getLogger("ticketcore.customer_updates")

KINDS = ("ticket_created", "agent_reply", "status_changed", "ticket_resolved", "ticket_closed")
#: How a status is named to a customer, per template language (others fall back to English).
_STATUS_NAMES = {
    "en": {
        "new": "new",
        "open": "open",
        "pending_customer": "waiting for your reply",
        "on_hold": "on hold",
        "resolved": "resolved",
        "closed": "closed",
    },
    "fr": {
        "new": "nouvelle",
        "open": "en cours",
        "pending_customer": "en attente de votre réponse",
        "on_hold": "en attente",
        "resolved": "résolue",
        "closed": "fermée",
    },
}


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.customer_updates]``."""

    #: Where a customer follows a ticket, e.g. ``https://help.example.org/portal/tickets/{id}``.
    portal_url: str | None = None
    #: Where a customer confirms a resolution (default: ``portal_url``).
    confirm_url: str | None = None
    #: Where a customer reopens a resolved ticket (default: ``portal_url``).
    reopen_url: str | None = None
    #: The satisfaction survey of a closed ticket.
    survey_url: str | None = None
    #: Kinds switched off for every organisation that has not chosen otherwise.
    disabled: list[str] = []
    #: The statuses whose reaching sends ``status_changed``.
    statuses: list[str] = msgspec.field(default_factory=lambda: ["pending_customer", "on_hold"])
    #: Channels that acknowledge new tickets themselves (None: detected from the settings).
    acknowledged_channels: list[str] | None = None
    #: Channels that deliver agents' replies themselves (None: detected from the settings).
    reply_channels: list[str] | None = None
    #: Template language for the notifiers (None: the notifier's own).
    language: str | None = None
    #: Signature the templates put under each message.
    signature: str | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.disabled if k not in KINDS]
        if unknown:
            raise ValueError(f"disabled: unknown kind(s) {unknown}; choose among {list(KINDS)}")
        known = {s.value for s in Status}
        bad = [s for s in self.statuses if s not in known]
        if bad:
            raise ValueError(f"statuses: unknown status(es) {bad}; choose among {sorted(known)}")
        for name in ("portal_url", "confirm_url", "reopen_url", "survey_url"):
            template = getattr(self, name)
            if template is not None:
                try:
                    template.format_map({"id": 1, "key": "k"})
                except (KeyError, IndexError, ValueError) as exc:
                    raise ValueError(
                        f"{name}: only the placeholders {{id}} and {{key}} are known ({exc})"
                    ) from exc


class Channels(msgspec.Struct, frozen=True, kw_only=True):
    """Channels that speak to the customer themselves."""

    acknowledged: frozenset[str] = frozenset()
    replies: frozenset[str] = frozenset()


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """What an event means for the requester: the kind, and what to tell them."""

    kind: str
    body: str = ""
    data: dict[str, Any] = {}


def update_for(
    event: TicketEvent,
    ticket: Ticket,
    entry: Entry | None,
    config: Config,
    channels: Channels,
    *,
    by_customer: bool = False,
) -> Update | None:
    """The customer update an event calls for, or None. Pure.

    ``entry`` is the conversation entry a ``message_added`` event points at (None for other
    events); ``by_customer`` says the event's actor is a customer (a status they changed
    themselves is not announced to them). Anything but the five kinds above and any entry
    that is not an agent's public message give None.
    """
    if event.kind == "created":
        if ticket.channel in channels.acknowledged:
            return None
        return Update(kind="ticket_created", body="")
    if event.kind == "message_added":
        if entry is None or entry.kind is not EntryKind.MESSAGE_OUT or not entry.is_public:
            return None
        if entry.ticket_id != ticket.id or ticket.channel in channels.replies:
            return None
        return Update(
            kind="agent_reply", body=entry.body_text, data={"agent_name": entry.author.name}
        )
    if event.kind != "status_changed" or "status" not in event.changes:
        return None
    if by_customer or event.actor.kind == "contact":
        return None  # the customer did it: they know
    new = str(event.changes["status"].new)
    comment = str(event.data.get("comment") or "")
    names = _STATUS_NAMES.get(config.language or "en", _STATUS_NAMES["en"])
    label = {"status": names.get(new, new), "status_code": new}
    if new == Status.RESOLVED.value:
        return Update(kind="ticket_resolved", body=comment, data=label)
    if new == Status.CLOSED.value:
        if event.data.get("cause") == "merged":
            return None  # merged into another ticket: that one carries on
        return Update(kind="ticket_closed", body=comment, data=label)
    if new in config.statuses:
        return Update(kind="status_changed", body=comment, data=label)
    return None


def channels_from(config: Config, settings: Settings | None) -> Channels:
    """The channels that acknowledge and that deliver replies: as configured, else detected
    (the e-mail channel enabled, with its ``acknowledge`` setting)."""
    email_on = settings is not None and "email" in settings.plugins.channels
    acknowledges = (
        email_on
        and settings is not None
        and settings.plugin_config("channels", "email").get("acknowledge", True) is not False
    )
    acked = config.acknowledged_channels
    replies = config.reply_channels
    return Channels(
        acknowledged=frozenset(acked if acked is not None else (["email"] if acknowledges else [])),
        replies=frozenset(replies if replies is not None else (["email"] if email_on else [])),
    )


def _url(template: str | None, ticket: Ticket) -> str | None:
    return template.format_map({"id": ticket.id, "key": ticket.key}) if template else None


def notification_for(
    update: Update, event: TicketEvent, ticket: Ticket, config: Config
) -> Notification:
    """The notification that tells the requester about ``update``. Pure."""
    portal = _url(config.portal_url, ticket)
    data: dict[str, Any] = {
        "audience": "customer",
        "ticket_number": ticket.number,
        # Lets the e-mail notifier give its mail a Message-ID the e-mail channel recognises:
        # the customer's answer then threads on the ticket even with the subject changed.
        "ticket_key": ticket.key,
        "ticket_url": portal,
        "event_id": event.id,
        **update.data,
    }
    if update.kind == "ticket_resolved":
        data["confirm_url"] = _url(config.confirm_url, ticket) or portal
        data["reopen_url"] = _url(config.reopen_url, ticket) or portal
    if update.kind == "ticket_closed":
        data["survey_url"] = _url(config.survey_url, ticket)
    if config.language:
        data["language"] = config.language
    if config.signature:
        data["signature"] = config.signature
    return Notification(
        kind=update.kind,
        ticket_id=ticket.id,
        recipients=[ticket.requester.email or ""],
        subject=ticket.subject,
        body=update.body,
        idempotency_key=f"customer_update:{event.id}:{update.kind}",
        data={k: v for k, v in data.items() if v is not None},
    )


def _reachable(address: str | None) -> bool:
    """Whether mail to ``address`` can go anywhere (not the intake's unknown sender)."""
    return bool(address) and "@" in (address or "") and not (address or "").endswith(".invalid")


async def _by_customer(app: App, event: TicketEvent) -> bool:
    """Whether a user with the customer role caused ``event`` (events keep no role)."""
    if event.kind != "status_changed" or event.actor.kind != "user" or event.actor.id is None:
        return False
    try:
        user = await app.auth.user(event.actor.id)
    except NotFound:
        return False
    return not user.role.is_staff


class CustomerUpdates:
    """The plugin object: turns ticket events into notifications for the requester."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.channels = channels_from(config, None)
        self.app: App | None = None

    @hookimpl
    def configure(self, settings: Settings) -> None:
        """Detect the channels that acknowledge and reply on their own."""
        self.channels = channels_from(self.config, settings)

    @hookimpl
    async def startup(self, app: App) -> None:
        """Keep the application: its tickets, preferences and outbox."""
        self.app = app

    @hookimpl
    async def ticket_event(self, event: TicketEvent, ticket: Ticket) -> None:
        """Queue the requester's notification for ``event``, if it calls for one."""
        app = self.app
        if app is None or not _reachable(ticket.requester.email):
            return
        if event.kind not in ("created", "message_added", "status_changed"):
            return  # notes, system entries, SLA, routing...: never the customer's business
        entry = None
        if event.kind == "message_added":
            entry_id = event.data.get("entry_id")
            if event.data.get("entry_kind") != EntryKind.MESSAGE_OUT.value or entry_id is None:
                return
            entry = await app.tickets.entry(int(entry_id))  # trust the entry, not the event
        update = update_for(
            event,
            ticket,
            entry,
            self.config,
            self.channels,
            by_customer=await _by_customer(app, event),
        )
        if update is None:
            return
        default = update.kind not in self.config.disabled
        org = ticket.requester.organisation_id
        if not await app.notification_prefs.enabled(org, update.kind, default):
            log.info("ticket %s: %s not sent (switched off)", ticket.id, update.kind)
            return
        if not app.hooks.implementers("notify"):
            return
        notification = notification_for(update, event, ticket, self.config)
        async with app.db.transaction():
            await app.jobs.enqueue(
                "notify",
                {"notification": msgspec.to_builtins(notification)},
                key=notification.idempotency_key,
            )
        app.jobs.wake()


def create(config: Config) -> CustomerUpdates:
    """Entry point factory: settings are checked by ``Config``; no I/O."""
    return CustomerUpdates(config)

"""In-app notifications for agents: the bell in the agent workspace.

Writes into ``app.agent_notifications`` (table ``agent_notification``; read through
``GET /api/v1/notifications``):

- **assigned**: an event gives a ticket an assignee (created assigned, routed, changed by an
  agent, a macro or a rule), unless the agent assigned it to themselves;
- **mentioned**: an internal note or an agent's reply names an active staff member with
  ``@handle`` (e-mail local part or name, see ``ticketcore.services.mentions``); the author
  is never notified of their own mention;
- **SLA alerts**: a ``notify`` of a kind in ``kinds`` (default ``sla_warning`` and
  ``sla_breach``) reaches each recipient who is an active staff member: the ticket's
  assignee, and whoever an escalation step names.

Each notification has an idempotency key (the event, the entry or the notification's own
key) and the inbox keeps one row per user and key, so redelivered events and retried jobs
never notify twice::

    [plugins]
    notifiers = ["in_app", "email"]

    [plugin.notifiers.in_app]
    kinds = ["sla_warning", "sla_breach"]
    mentions = true
    assignments = true
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore import EntryKind, Notification, Ticket, TicketEvent, hookimpl

if TYPE_CHECKING:
    from ticketcore.app import App

_SNIPPET = 300
_LABELS = {"sla_warning": "SLA warning", "sla_breach": "SLA breach"}
_MENTION_ENTRIES = frozenset({EntryKind.NOTE.value, EntryKind.MESSAGE_OUT.value})


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.notifiers.in_app]``."""

    #: Notification kinds (from ``notify``) that staff recipients also get in the app.
    kinds: list[str] = msgspec.field(default_factory=lambda: ["sla_warning", "sla_breach"])
    #: Tell agents when a ticket is assigned to them.
    assignments: bool = True
    #: Tell staff when a note or reply @mentions them.
    mentions: bool = True


def new_assignee(event: TicketEvent) -> int | None:
    """The agent an event assigns the ticket to, or None. Pure."""
    if "assignee_id" in event.changes:
        value = event.changes["assignee_id"].new
    elif event.kind == "created":
        value = event.data.get("assignee_id")
    else:
        return None
    if value is None:
        return None
    if event.actor.kind == "user" and event.actor.id == value:
        return None  # took it themselves
    return int(value)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[: _SNIPPET - 1] + "…"


class InApp:
    """The plugin object: writes agents' in-app notifications."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app: App | None = None

    @hookimpl
    async def startup(self, app: App) -> None:
        """Keep the application (its inbox service)."""
        self.app = app

    @hookimpl
    async def ticket_event(self, event: TicketEvent, ticket: Ticket) -> None:
        """Assignments and @mentions become notifications of the agents concerned."""
        if self.app is None:
            return
        if self.config.assignments:
            await self._assigned(self.app, event, ticket)
        if self.config.mentions and event.data.get("entry_kind") in _MENTION_ENTRIES:
            await self._mentioned(self.app, event, ticket)

    async def _assigned(self, app: App, event: TicketEvent, ticket: Ticket) -> None:
        agent = new_assignee(event)
        if agent is None or not await app.agent_notifications.is_active_staff(agent):
            return
        by = event.actor.name or event.actor.kind
        await app.agent_notifications.add(
            [agent],
            kind="assigned",
            key=f"assigned:{event.id}",
            title=f"{ticket.number} assigned to you: {ticket.subject}",
            body=f"Assigned by {by}.",
            ticket_id=ticket.id,
            data={"event_id": event.id, "by": by, "priority": ticket.priority.value},
        )

    async def _mentioned(self, app: App, event: TicketEvent, ticket: Ticket) -> None:
        entry_id = event.data.get("entry_id")
        if entry_id is None:
            return
        entry = await app.tickets.entry(int(entry_id))
        if entry.kind.value not in _MENTION_ENTRIES:
            return
        author = entry.author.id if entry.author.kind == "user" else None
        found = await app.agent_notifications.mentioned_staff(entry.body_text)
        people = [m.id for m in found if m.id != author]
        if not people:
            return
        where = "a note" if entry.kind is EntryKind.NOTE else "a reply"
        data: dict[str, Any] = {"entry_id": entry.id, "entry_kind": entry.kind.value}
        await app.agent_notifications.add(
            people,
            kind="mentioned",
            key=f"mention:{entry.id}",
            title=f"{entry.author.name or 'Someone'} mentioned you in {where} on "
            f"{ticket.number}: {ticket.subject}",
            body=_snippet(entry.body_text),
            ticket_id=ticket.id,
            data=data,
        )

    @hookimpl
    async def notify(self, notification: Notification) -> None:
        """SLA alerts (``kinds``) for staff recipients, in their inbox too."""
        if self.app is None or notification.kind not in self.config.kinds:
            return
        service = self.app.agent_notifications
        users = await service.staff_ids_by_email(notification.recipients)
        if not users:
            return
        number = notification.data.get("ticket_number") or (
            f"#{notification.ticket_id}" if notification.ticket_id is not None else ""
        )
        label = _LABELS.get(notification.kind) or notification.kind.replace("_", " ").capitalize()
        await service.add(
            users,
            kind=notification.kind,
            key=notification.idempotency_key,
            title=f"{label}: {number} {notification.subject}".strip(),
            body=notification.body,
            ticket_id=notification.ticket_id,
            data=dict(notification.data),
        )


def create(config: Config) -> InApp:
    """Entry point factory: no I/O."""
    return InApp(config)

"""Split one message of a ticket into a sub-ticket.

The new ticket has the same requester, category and priority, the message's text (and
files) as its description, and is linked to the original as its parent (``parent`` link on
the new ticket; the original records a ``split`` event naming the new ticket and the
message). Staff only; system entries cannot be split.

The three steps (open the ticket, link it, record the event on the original) are three
transactions: a failure after the first leaves a sub-ticket without its link, never a link
to a ticket that does not exist.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from ticketcore.domain.commands import AttachmentUpload, LinkRequest, NewTicket, RequesterInput
from ticketcore.domain.enums import EntryKind, LinkKind
from ticketcore.domain.models import Principal, Ticket
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.history import EventDraft, record_events

if TYPE_CHECKING:
    from ticketcore.app import App

SPLITTABLE = (EntryKind.MESSAGE_IN, EntryKind.MESSAGE_OUT, EntryKind.NOTE)


async def split_entry(app: App, actor: Principal, ticket_id: int, entry_id: int) -> Ticket:
    """Open a sub-ticket from entry ``entry_id`` of ticket ``ticket_id``; return it."""
    permissions.ensure_staff(actor, "splitting a ticket")
    parent = await app.tickets.get(actor, ticket_id)
    entry = await app.tickets.entry(entry_id)
    if entry.ticket_id != ticket_id:
        raise NotFound(f"entry {entry_id} is not on ticket {ticket_id}", field="entry_id")
    if entry.kind not in SPLITTABLE:
        raise ValidationFailed("only a message or a note can be split", field="entry_id")
    files = [
        AttachmentUpload(
            filename=a.filename,
            content_type=a.content_type,
            content_base64=base64.b64encode(app.tickets.store.read(a.sha256)).decode(),
        )
        for a in entry.attachments
    ]
    first_line = next((line.strip() for line in entry.body_text.splitlines() if line.strip()), "")
    subject = (first_line or parent.subject)[:200]
    child = await app.tickets.create(
        actor,
        NewTicket(
            subject=subject,
            body=entry.body_text or parent.subject,
            requester=RequesterInput(id=parent.requester.id),
            priority=parent.priority,
            category=parent.category,
            channel="split",
            team_id=parent.team_id,
            attachments=files,
        ),
    )
    await app.tickets.link(actor, child.id, LinkRequest(kind=LinkKind.PARENT, ticket_id=ticket_id))
    now = app.clock.now()
    async with app.db.transaction():
        event = EventDraft(kind="split", data={"entry_id": entry_id, "ticket_id": child.id})
        await record_events(app, ticket_id, actor.actor, [event], now)
    app.jobs.wake()
    return await app.tickets.snapshot(child.id)

"""Tickets: create, list, read, change, converse, transition, history, links."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from ticketcore.domain.commands import (
    LinkRequest,
    NewEntry,
    NewTicket,
    TicketFilters,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.enums import Priority
from ticketcore.domain.models import Entry, Ticket, TicketEvent
from ticketcore.errors import ValidationFailed
from ticketcore.services.tickets import Page
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


def _version_from(if_match: str | None) -> int | None:
    """Read a version from an If-Match header: ``"3"``, ``W/"3"`` or ``3``."""
    if if_match is None:
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed(
            'If-Match must be the ticket\'s version, e.g. "3"', field="If-Match"
        ) from exc


def _with_etag(ticket: Ticket, status_code: int = 200) -> Response[Ticket]:
    return Response(ticket, status_code=status_code, headers={"ETag": f'"{ticket.version}"'})


IfMatch = Annotated[str | None, HeaderParameter(name="If-Match", required=False)]


class TicketController(Controller):
    """``/api/v1/tickets``"""

    path = "/api/v1/tickets"
    tags = ["tickets"]

    @post("/")
    async def create_ticket(
        self, data: JSONBody[NewTicket], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Response[Ticket]:
        """Open a ticket. Staff name the requester; a customer is the requester."""
        return _with_etag(await helpdesk.tickets.create(principal, data), 201)

    @get("/")
    async def list_tickets(
        self,
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        status: FromQuery[str | None] = None,
        priority: FromQuery[Priority | None] = None,
        team_id: FromQuery[int | None] = None,
        assignee_id: FromQuery[int | None] = None,
        unassigned: FromQuery[bool] = False,
        requester_id: FromQuery[int | None] = None,
        category: FromQuery[str | None] = None,
        tag: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
    ) -> Page:
        """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        filters = TicketFilters(
            status=status,
            priority=priority,
            team_id=team_id,
            assignee_id=assignee_id,
            unassigned=unassigned,
            requester_id=requester_id,
            category=category,
            tag=tag,
            q=q,
        )
        return await helpdesk.tickets.list(principal, filters, cursor, limit)

    @get("/{ticket_id:int}")
    async def get_ticket(
        self, ticket_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Response[Ticket]:
        """One ticket; the ETag header carries its version for PATCH's If-Match."""
        return _with_etag(await helpdesk.tickets.get(principal, ticket_id))

    @patch("/{ticket_id:int}")
    async def update_ticket(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[TicketPatch],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        if_match: IfMatch = None,
    ) -> Response[Ticket]:
        """Change fields. Send the version you read (``version`` or If-Match): a stale one
        gets 409 and nothing changes."""
        ticket = await helpdesk.tickets.update(principal, ticket_id, data, _version_from(if_match))
        return _with_etag(ticket)

    @post("/{ticket_id:int}/messages")
    async def add_message(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[NewEntry],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Entry:
        """A public message: an agent's reply or the customer's answer."""
        return await helpdesk.tickets.add_entry(principal, ticket_id, data, internal=False)

    @post("/{ticket_id:int}/notes")
    async def add_note(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[NewEntry],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Entry:
        """An internal note: never shown to the customer."""
        return await helpdesk.tickets.add_entry(principal, ticket_id, data, internal=True)

    @get("/{ticket_id:int}/entries")
    async def list_entries(
        self, ticket_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[Entry]:
        """The conversation, oldest first (customers see public messages only)."""
        return await helpdesk.tickets.entries(principal, ticket_id)

    @post("/{ticket_id:int}/transitions")
    async def transition(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[TransitionRequest],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        if_match: IfMatch = None,
    ) -> Response[Ticket]:
        """Move through the lifecycle: open, wait_for_customer, hold, resolve, close, reopen."""
        ticket = await helpdesk.tickets.transition(
            principal, ticket_id, data, _version_from(if_match)
        )
        return _with_etag(ticket, 200)

    @get("/{ticket_id:int}/events")
    async def list_events(
        self, ticket_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[TicketEvent]:
        """The history: who changed what, when, old and new values (staff only)."""
        return await helpdesk.tickets.events(principal, ticket_id)

    @post("/{ticket_id:int}/links")
    async def add_link(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[LinkRequest],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Response[Ticket]:
        """Relate to another ticket: parent, merged_into (closes this one) or related."""
        return _with_etag(await helpdesk.tickets.link(principal, ticket_id, data), 200)


class AttachmentController(Controller):
    """``/api/v1/attachments``"""

    path = "/api/v1/attachments"
    tags = ["tickets"]

    @get("/{attachment_id:int}", media_type="application/octet-stream")
    async def download(
        self, attachment_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Response[bytes]:
        """The file, with its content type; the checksum is in the ETag."""
        info, data = await helpdesk.tickets.attachment(principal, attachment_id)
        disposition = f"attachment; filename*=UTF-8''{quote(info.filename)}"
        return Response(
            data,
            media_type=info.content_type,
            headers={
                "Content-Disposition": disposition,
                "ETag": f'"{info.sha256}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

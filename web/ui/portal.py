"""The customer portal: the customer's own tickets, a new-ticket form, replies, and
confirming a resolution or reopening (the rating form is in ``survey.py``)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery

from ticketcore.domain.commands import NewEntry, NewTicket, TicketFilters, TransitionRequest
from ticketcore.domain.enums import Status
from ticketcore.errors import TicketCoreError
from ticketcore.web.ui.category_choices import category_choices
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import attachments, text
from ticketcore.web.ui.kb_pages import kb_enabled

#: Categories offered on the new-ticket form: the ones already in use, else these.
DEFAULT_CATEGORIES = ("billing", "technical", "account", "other")


async def categories(viewer: Viewer) -> list[tuple[str, str]]:
    """The categories a customer may choose, as ``(value, label)``: the active ones an admin
    defined; when none is, the ones already in use and the defaults (label empty: the page
    translates the defaults)."""
    defined = await category_choices(viewer)
    if defined is not None:
        return defined
    rows = await viewer.helpdesk.db.fetch(
        "SELECT DISTINCT set_category AS c FROM macro WHERE set_category IS NOT NULL"
    )
    found = {str(r["c"]) for r in rows}
    return [(c, "") for c in sorted(found | set(DEFAULT_CATEGORIES))]


class PortalController(Controller):
    """``/portal``: pages for customers only; every ticket is checked to be theirs."""

    path = "/portal"
    include_in_schema = False

    @get("/")
    async def index(self, viewer: ViewerDep, cursor: FromQuery[str | None] = None) -> Response[Any]:
        """The customer's tickets, newest first."""
        customer = viewer.require_customer()
        page = await viewer.helpdesk.tickets.list(customer, TicketFilters(), cursor, limit=50)
        return viewer.page(
            "portal/index.html",
            tickets=page.items,
            next_cursor=page.next_cursor,
            kb=kb_enabled(viewer.helpdesk),
        )

    @get("/new")
    async def new_form(self, viewer: ViewerDep) -> Response[Any]:
        """The form to open a ticket."""
        viewer.require_customer()
        return viewer.page("portal/new.html", categories=await categories(viewer), values={})

    @post("/new")
    async def create(self, viewer: ViewerDep) -> Response[Any]:
        """Open a ticket with a category and files."""
        customer = viewer.require_customer()
        form = await viewer.form()
        values = {k: text(form, k) for k in ("subject", "body", "category")}
        allowed = await categories(viewer)
        try:
            cmd = NewTicket(
                subject=values["subject"],
                body=values["body"],
                category=values["category"] if values["category"] in dict(allowed) else None,
                channel="portal",
                attachments=await attachments(form),
            )
            ticket = await viewer.helpdesk.tickets.create(customer, cmd)
        except TicketCoreError as exc:
            return viewer.page(
                "portal/new.html",
                status_code=422,
                categories=allowed,
                values=values,
                error=exc.message,
            )
        return viewer.redirect(f"/portal/tickets/{ticket.id}", done="ticket_opened")

    @get("/tickets/{ticket_id:int}")
    async def ticket(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One of the customer's tickets with its public conversation only."""
        customer = viewer.require_customer()
        helpdesk = viewer.helpdesk
        ticket = await helpdesk.tickets.get(customer, ticket_id)
        entries = await helpdesk.tickets.entries(customer, ticket_id)
        return viewer.page(
            "portal/ticket.html",
            ticket=ticket,
            entries=[e for e in entries if e.is_public],
            rating=await helpdesk.satisfaction.get(customer, ticket_id),
            can_rate=await helpdesk.satisfaction.can_rate(customer, ticket_id),
            can_reply=ticket.status is not Status.CLOSED,
            resolved=ticket.status is Status.RESOLVED,
            closed=ticket.status is Status.CLOSED,
            live_after=await viewer.ui.feed.latest_id(),
        )

    @post("/tickets/{ticket_id:int}/reply")
    async def reply(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """The customer's answer (with files)."""
        customer = viewer.require_customer()
        form = await viewer.form()
        back = f"/portal/tickets/{ticket_id}"
        try:
            cmd = NewEntry(body=text(form, "body"), attachments=await attachments(form))
            await viewer.helpdesk.tickets.add_entry(customer, ticket_id, cmd, internal=False)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="reply_sent")

    @post("/tickets/{ticket_id:int}/status")
    async def status(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Confirm the resolution (close) or reopen."""
        customer = viewer.require_customer()
        form = await viewer.form()
        back = f"/portal/tickets/{ticket_id}"
        action = text(form, "action")
        transition = {"confirm": "close", "reopen": "reopen"}.get(action, action or "-")
        try:
            req = TransitionRequest(transition=transition, comment=text(form, "comment") or None)
            await viewer.helpdesk.tickets.transition(customer, ticket_id, req)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="confirmed" if transition == "close" else "reopened")

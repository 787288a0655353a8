"""The agent workspace: queues, search, the ticket page and the actions on a ticket."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery

from ticketcore.domain.commands import (
    LinkRequest,
    NewEntry,
    TicketFilters,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.enums import LinkKind, Priority
from ticketcore.domain.lifecycle import allowed_transitions
from ticketcore.domain.models import KbHit, Principal, Ticket
from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.services import presence
from ticketcore.services.knowledge import suggest_knowledge
from ticketcore.web.ui import queues, staff
from ticketcore.web.ui.category_choices import category_choices, check_category
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import attachments, optional_int, tags, text

VIEW_TITLES = {
    "mine": "queue.mine",
    "unassigned": "queue.unassigned",
    "team": "queue.team",
    "pending": "queue.pending",
    "at_risk": "queue.at_risk",
    "search": "queue.search",
}


async def live_after(viewer: Viewer) -> int:
    """The newest event id now: the page's live updates start after it."""
    return await viewer.ui.feed.latest_id()


async def _queue_context(
    viewer: Viewer, agent: Principal, view: str, before: int | None, q: str
) -> dict[str, Any]:
    helpdesk = viewer.helpdesk
    teams = await queues.team_ids(helpdesk, agent.id)
    counts = await queues.all_counts(helpdesk, agent, teams)
    if view == "search":
        tickets, next_before = [], None
        if q:
            page = await helpdesk.tickets.list(agent, TicketFilters(q=q), limit=25)
            tickets = page.items
    elif view == "at_risk":
        tickets = await queues.at_risk_page(helpdesk, helpdesk.clock.now())
        next_before = None
    else:
        tickets, next_before = await queues.view_page(
            helpdesk, queues.scopes(view, agent, teams), before=before
        )
    people = {c.id: c.name for c in await staff.colleagues(helpdesk)}
    return {
        "view": view,
        "views": VIEW_TITLES,
        "counts": counts,
        "tickets": tickets,
        "next_before": next_before,
        "q": q,
        "people": people,
        "live_after": await live_after(viewer),
        "saved": await helpdesk.saved_filters.list(agent),
    }


async def ticket_context(viewer: Viewer, agent: Principal, ticket_id: int) -> dict[str, Any]:
    """Everything the agent's ticket page shows."""
    helpdesk = viewer.helpdesk
    ticket = await helpdesk.tickets.get(agent, ticket_id)
    entries = await helpdesk.tickets.entries(agent, ticket_id)
    events = await helpdesk.tickets.events(agent, ticket_id)
    others = await helpdesk.tickets.list(
        agent, TicketFilters(requester_id=ticket.requester.id), limit=11
    )
    people = await staff.colleagues(helpdesk)
    return {
        "ticket": ticket,
        "entries": entries,
        "events": events,
        "others": [t for t in others.items if t.id != ticket.id][:10],
        "colleagues": people,
        "people": {c.id: c.name for c in people},
        "teams": await helpdesk.directory.teams(),
        "categories": await category_choices(viewer),
        "macros": await helpdesk.macros.list(agent),
        "priorities": [p.value for p in Priority],
        "link_kinds": [k.value for k in LinkKind],
        "transitions": allowed_transitions(ticket.status),
        "live_after": await live_after(viewer),
        "suggestions": await _suggestions(viewer, ticket),
        "satisfaction": await helpdesk.satisfaction.get(agent, ticket_id),
        "present": await helpdesk.presence.others(ticket_id, agent.id),
        "presence_every": presence.HEARTBEAT,
    }


async def newer_messages(viewer: Viewer, ticket_id: int, seen: int) -> list[str]:
    """Who wrote a public message on the ticket after entry ``seen`` (the newest the agent
    had on screen): another agent's reply or the customer's answer."""
    rows = await viewer.helpdesk.db.fetch(
        "SELECT author_name FROM entry WHERE ticket = {} AND id > {} "
        "AND kind IN ('message_in', 'message_out') ORDER BY id",
        ticket_id,
        seen,
    )
    return list(dict.fromkeys(str(r["author_name"]) for r in rows))


async def _suggestions(viewer: Viewer, ticket: Ticket) -> list[KbHit]:
    """Knowledge-base articles for the ticket, when a kb plugin is enabled; only links to
    web pages are kept (a source cannot slip a ``javascript:`` link into the page)."""
    helpdesk = viewer.helpdesk
    if not helpdesk.hooks.implementers("kb_suggest"):
        return []
    hits = await suggest_knowledge(helpdesk, ticket, 5)
    return [h for h in hits if h.url.startswith(("https://", "http://", "/"))]


class AgentController(Controller):
    """``/agent``: pages for agents and admins only."""

    path = "/agent"
    include_in_schema = False

    @get("/")
    async def index(self, viewer: ViewerDep) -> Response[Any]:
        """The agent's own queue."""
        viewer.require_staff()
        return viewer.redirect("/agent/queue/mine")

    @get("/queue/{view:str}")
    async def queue(
        self,
        view: FromPath[str],
        viewer: ViewerDep,
        before: FromQuery[int | None] = None,
        q: FromQuery[str] = "",
        fragment: FromQuery[bool] = False,
    ) -> Response[Any]:
        """One queue view with the counts of all; ``fragment`` returns only the live part."""
        agent = viewer.require_staff()
        if view not in VIEW_TITLES:
            raise ValidationFailed(f"unknown queue {view!r}", field="view")
        context = await _queue_context(viewer, agent, view, before, q.strip())
        if fragment:
            return viewer.page("agent/queue_live.html", **context)
        return viewer.page("agent/queue.html", **context)

    @get("/search")
    async def search(self, viewer: ViewerDep, q: FromQuery[str] = "") -> Response[Any]:
        """Search by subject; ``#123`` or ``123`` opens that ticket."""
        agent = viewer.require_staff()
        wanted = q.strip().lstrip("#")
        if wanted.isdigit():
            return viewer.redirect(f"/agent/tickets/{int(wanted)}")
        context = await _queue_context(viewer, agent, "search", None, q.strip())
        return viewer.page("agent/queue.html", **context)

    @get("/tickets/{ticket_id:int}")
    async def ticket(
        self, ticket_id: FromPath[int], viewer: ViewerDep, fragment: FromQuery[bool] = False
    ) -> Response[Any]:
        """The ticket page; ``fragment`` returns only the parts that live updates replace."""
        agent = viewer.require_staff()
        context = await ticket_context(viewer, agent, ticket_id)
        if not fragment:  # opening the page counts as the first heartbeat
            await viewer.helpdesk.presence.beat(agent.id, ticket_id, "viewing")
        if fragment:
            return viewer.page("agent/ticket_live.html", **context)
        return viewer.page("agent/ticket.html", **context)

    @post("/tickets/{ticket_id:int}/entries")
    async def add_entry(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """A public reply or an internal note (with files)."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        internal = text(form, "kind") == "note"
        body = text(form, "body")
        seen = optional_int(form, "seen")
        if not internal and seen is not None and text(form, "force") != "1":
            newer = await newer_messages(viewer, ticket_id, seen)
            if newer:  # someone answered meanwhile: show it, keep the draft, ask again
                context = await ticket_context(viewer, agent, ticket_id)
                return viewer.page(
                    "agent/ticket.html", status_code=409, draft=body, collision=newer, **context
                )
        try:
            cmd = NewEntry(body=body, attachments=await attachments(form))
            await viewer.helpdesk.tickets.add_entry(agent, ticket_id, cmd, internal=internal)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="note_added" if internal else "reply_sent")

    @post("/tickets/{ticket_id:int}/macro")
    async def apply_macro(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Apply a canned response: reply, field changes and status in one step."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        try:
            macro_id = optional_int(form, "macro_id")
            if macro_id is None:
                raise ValidationFailed("choose a canned response", field="macro_id")
            await viewer.helpdesk.macros.apply(agent, macro_id, ticket_id)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="macro_applied")

    @post("/tickets/{ticket_id:int}/fields")
    async def update_fields(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Assignee, team, priority, category and tags, at the version the agent saw."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        try:
            priority = text(form, "priority")
            if priority not in {p.value for p in Priority}:
                raise ValidationFailed(f"unknown priority {priority!r}", field="priority")
            patch = TicketPatch(
                version=optional_int(form, "version"),
                priority=Priority(priority),
                category=check_category(
                    text(form, "category"),
                    await category_choices(viewer),
                    (await viewer.helpdesk.tickets.get(agent, ticket_id)).category,
                ),
                assignee_id=optional_int(form, "assignee_id"),
                team_id=optional_int(form, "team_id"),
                tags=tags(form),
            )
            await viewer.helpdesk.tickets.update(agent, ticket_id, patch)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="saved")

    @post("/tickets/{ticket_id:int}/link")
    async def link(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Relate to another ticket: related, parent, or merged into (closes this one)."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        try:
            other = text(form, "other").lstrip("#")
            if not other.isdigit():
                raise ValidationFailed("give the other ticket's number", field="other")
            kind = text(form, "kind")
            if kind not in {k.value for k in LinkKind}:
                raise ValidationFailed(f"unknown link kind {kind!r}", field="kind")
            request = LinkRequest(kind=LinkKind(kind), ticket_id=int(other))
            await viewer.helpdesk.tickets.link(agent, ticket_id, request)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="linked")

    @post("/tickets/{ticket_id:int}/transition")
    async def transition(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Change the status through the lifecycle."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        try:
            req = TransitionRequest(
                transition=text(form, "transition") or "-", version=optional_int(form, "version")
            )
            await viewer.helpdesk.tickets.transition(agent, ticket_id, req)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(back, done="status_changed")

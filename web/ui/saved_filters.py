"""Agents' saved filters: ``/agent/filters`` (make, list, delete) and
``/agent/filters/{id}`` (the tickets a filter finds, newest first, live like a queue)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath, FromQuery

from ticketcore.domain.commands import TicketFilters
from ticketcore.domain.enums import Priority, Status
from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.web.ui import queues, staff
from ticketcore.web.ui.agent import VIEW_TITLES, live_after
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import optional_int, text

#: The saved-filter page's entry in the queue titles (not a navigation view).
SAVED_VIEW = "saved"


def filters_from_form(form: FormMultiDict) -> TicketFilters:
    """The filters of the form; empty fields filter nothing."""
    priority = text(form, "priority")
    if priority and priority not in {p.value for p in Priority}:
        raise ValidationFailed(f"unknown priority {priority!r}", field="priority")
    assignee = text(form, "assignee")
    return TicketFilters(
        status=text(form, "status") or None,
        priority=Priority(priority) if priority else None,
        team_id=optional_int(form, "team_id"),
        assignee_id=int(assignee) if assignee.isdigit() else None,
        unassigned=assignee == "none",
        category=text(form, "category") or None,
        tag=text(form, "tag") or None,
        q=text(form, "q") or None,
    )


async def _manage(viewer: Viewer, status_code: int = 200, **extra: Any) -> Response[Any]:
    agent = viewer.require_staff()
    helpdesk = viewer.helpdesk
    people = await staff.colleagues(helpdesk)
    return viewer.page(
        "agent/filters.html",
        status_code=status_code,
        saved=await helpdesk.saved_filters.list(agent),
        colleagues=people,
        people={c.id: c.name for c in people},
        teams=await helpdesk.directory.teams(),
        statuses=[s.value for s in Status],
        priorities=[p.value for p in Priority],
        **extra,
    )


class SavedFilterController(Controller):
    """``/agent/filters``: an agent's own saved filters."""

    path = "/agent/filters"
    include_in_schema = False

    @get("/")
    async def manage(self, viewer: ViewerDep) -> Response[Any]:
        """The agent's filters and the form to save one."""
        return await _manage(viewer, values={})

    @post("/")
    async def save(self, viewer: ViewerDep) -> Response[Any]:
        """Save a filter (same name: replaced); then show what it finds."""
        agent = viewer.require_staff()
        form = await viewer.form()
        try:
            saved = await viewer.helpdesk.saved_filters.save(
                agent, text(form, "name"), filters_from_form(form)
            )
        except TicketCoreError as exc:
            values = {k: text(form, k) for k in form}
            return await _manage(viewer, exc.status_code, error=exc.message, values=values)
        return viewer.redirect(f"/agent/filters/{saved.id}", done="filter_saved")

    @post("/{filter_id:int}/delete")
    async def delete(self, filter_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Delete one of the agent's filters."""
        agent = viewer.require_staff()
        await viewer.form()
        await viewer.helpdesk.saved_filters.delete(agent, filter_id)
        return viewer.redirect("/agent/filters", done="filter_deleted")

    @get("/{filter_id:int}")
    async def show(
        self,
        filter_id: FromPath[int],
        viewer: ViewerDep,
        cursor: FromQuery[str | None] = None,
        fragment: FromQuery[bool] = False,
    ) -> Response[Any]:
        """The tickets the filter finds, newest first (keyset pages of 25)."""
        agent = viewer.require_staff()
        helpdesk = viewer.helpdesk
        saved = await helpdesk.saved_filters.get(agent, filter_id)
        page = await helpdesk.tickets.list(agent, saved.filters, cursor, limit=25)
        teams = await queues.team_ids(helpdesk, agent.id)
        context = {
            "view": SAVED_VIEW,
            "views": {**VIEW_TITLES, SAVED_VIEW: "filters.saved"},
            "heading": saved.name,
            "current_filter": saved.id,
            "saved": await helpdesk.saved_filters.list(agent),
            "counts": await queues.all_counts(helpdesk, agent, teams),
            "tickets": page.items,
            "next_before": None,
            "next_cursor": page.next_cursor,
            "q": "",
            "people": {c.id: c.name for c in await staff.colleagues(helpdesk)},
            "live_after": await live_after(viewer),
        }
        if fragment:
            return viewer.page("agent/queue_live.html", **context)
        return viewer.page("agent/queue.html", **context)

"""Agent workspace extras: split a message into a sub-ticket, and presence on a ticket
("Sam is viewing / replying to this ticket")."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, post
from litestar.params import FromPath

from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.services.split import split_entry
from ticketcore.web.ui.context import ViewerDep
from ticketcore.web.ui.forms import optional_int, text


class AgentExtrasController(Controller):
    """``/agent/tickets/{id}/split`` and ``/agent/tickets/{id}/presence``."""

    path = "/agent/tickets/{ticket_id:int}"
    include_in_schema = False

    @post("/split")
    async def split(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Open a sub-ticket from one message; go to it."""
        agent = viewer.require_staff()
        form = await viewer.form()
        back = f"/agent/tickets/{ticket_id}"
        try:
            entry_id = optional_int(form, "entry_id")
            if entry_id is None:
                raise ValidationFailed("choose the message to split", field="entry_id")
            child = await split_entry(viewer.helpdesk, agent, ticket_id, entry_id)
        except TicketCoreError as exc:
            return viewer.redirect(back, error=exc.message)
        return viewer.redirect(f"/agent/tickets/{child.id}", done="split")

    @post("/presence")
    async def presence(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """The page's heartbeat (``mode``: viewing or replying; ``leave=1`` when the page
        closes); answers with the presence part of the page (who else is there)."""
        agent = viewer.require_staff()
        form = await viewer.form()
        helpdesk = viewer.helpdesk
        await helpdesk.tickets.get(agent, ticket_id)  # 404 for a ticket that does not exist
        if text(form, "leave") == "1":
            await helpdesk.presence.leave(agent.id, ticket_id)
        else:
            await helpdesk.presence.beat(agent.id, ticket_id, text(form, "mode") or "viewing")
        present = await helpdesk.presence.others(ticket_id, agent.id)
        return viewer.page("agent/presence.html", present=present)

"""Macros (canned responses): list, create, apply to a ticket."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.params import FromPath, JSONBody

from ticketcore.domain.commands import ApplyMacro, NewMacro
from ticketcore.domain.models import Ticket
from ticketcore.services.macros import MacroInfo
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


class MacroController(Controller):
    """``/api/v1/macros``"""

    path = "/api/v1/macros"
    tags = ["macros"]

    @get("/")
    async def list_macros(self, helpdesk: HelpdeskDep, principal: PrincipalDep) -> list[MacroInfo]:
        """Active macros (staff)."""
        return await helpdesk.macros.list(principal)

    @post("/")
    async def create_macro(
        self, data: JSONBody[NewMacro], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> MacroInfo:
        """Add a macro (admins); placeholders and transition are checked now."""
        return await helpdesk.macros.create(principal, data)

    @post("/{macro_id:int}/apply")
    async def apply_macro(
        self,
        macro_id: FromPath[int],
        data: JSONBody[ApplyMacro],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Response[Ticket]:
        """Reply, change fields and move the ticket in one step (all or nothing)."""
        ticket = await helpdesk.macros.apply(principal, macro_id, data.ticket_id)
        return Response(ticket, status_code=200, headers={"ETag": f'"{ticket.version}"'})

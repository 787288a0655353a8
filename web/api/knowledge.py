"""Knowledge search across every enabled source: ``/api/v1/kb/search`` for anyone signed in,
``/api/v1/tickets/{id}/kb-suggestions`` for agents on a ticket."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from ticketcore.domain.models import KbHit
from ticketcore.errors import ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.knowledge import search_knowledge, suggest_knowledge
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 50:
        raise ValidationFailed("limit must be between 1 and 50", field="limit")


class KnowledgeController(Controller):
    """Search and suggestions from the ``kb`` plugins (empty when none is enabled)."""

    tags = ["knowledge base"]

    @get("/api/v1/kb/search")
    async def search(
        self,
        q: FromQuery[str],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        limit: FromQuery[int] = 10,
    ) -> list[KbHit]:
        """Hits for ``q`` from every knowledge source, best first (what customers may see)."""
        _check_limit(limit)
        return await search_knowledge(helpdesk, q, limit)

    @get("/api/v1/tickets/{ticket_id:int}/kb-suggestions")
    async def suggestions(
        self,
        ticket_id: FromPath[int],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        limit: FromQuery[int] = 5,
    ) -> list[KbHit]:
        """Articles that may answer this ticket (agents)."""
        permissions.ensure_staff(principal, "reading suggestions")
        _check_limit(limit)
        ticket = await helpdesk.tickets.get(principal, ticket_id)
        return await suggest_knowledge(helpdesk, ticket, limit)

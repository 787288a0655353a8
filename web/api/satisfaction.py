"""Satisfaction ratings: ``/api/v1/tickets/{id}/satisfaction`` (the requester rates, staff
and the requester read) and ``/api/v1/satisfaction/summary`` (staff)."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from ticketcore.errors import NotFound
from ticketcore.services.satisfaction import (
    SatisfactionInput,
    SatisfactionRating,
    SatisfactionSummary,
)
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


class SatisfactionController(Controller):
    """A ticket's CSAT rating (1 to 5 and a comment) and the summary for reports."""

    tags = ["satisfaction"]

    @post("/api/v1/tickets/{ticket_id:int}/satisfaction", status_code=200)
    async def rate(
        self,
        ticket_id: FromPath[int],
        data: JSONBody[SatisfactionInput],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> SatisfactionRating:
        """Rate a resolved or closed ticket (its requester only); changeable until the
        ticket has been closed for 7 days. Staff get 403; a ticket in another status 409."""
        return await helpdesk.satisfaction.rate(principal, ticket_id, data)

    @get("/api/v1/tickets/{ticket_id:int}/satisfaction")
    async def read(
        self, ticket_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> SatisfactionRating:
        """The ticket's rating (staff, or the requester); 404 when it is not rated yet."""
        rating = await helpdesk.satisfaction.get(principal, ticket_id)
        if rating is None:
            raise NotFound(f"ticket {ticket_id} has no rating yet", field="satisfaction")
        return rating

    @get("/api/v1/satisfaction/summary")
    async def summary(
        self,
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> SatisfactionSummary:
        """How many ratings were given or changed in ``[since, until)``, their average and
        how many of each score (staff)."""
        return await helpdesk.satisfaction.summary(principal, since=since, until=until)

"""The satisfaction survey in the portal: ``/portal/tickets/{id}/rate``.

The closed-ticket mail's ``survey_url`` can point here
(``https://help.example.org/portal/tickets/{id}/rate``): a customer who is not signed in is
sent to the sign-in page and comes back.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath

from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.services.satisfaction import MAX_RATING, MIN_RATING, SatisfactionInput
from ticketcore.web.ui.context import ViewerDep
from ticketcore.web.ui.forms import text

#: The scores offered, best first (as people read a star scale), with their labels.
SCORES = [(n, f"portal.rate_score_{n}") for n in range(MAX_RATING, MIN_RATING - 1, -1)]


class SurveyController(Controller):
    """The rating form of one of the customer's resolved or closed tickets."""

    path = "/portal/tickets/{ticket_id:int}/rate"
    include_in_schema = False

    @get("/")
    async def form(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """The form, filled with the rating already given (if any)."""
        customer = viewer.require_customer()
        helpdesk = viewer.helpdesk
        ticket = await helpdesk.tickets.get(customer, ticket_id)
        rating = await helpdesk.satisfaction.get(customer, ticket_id)
        return viewer.page(
            "portal/rate.html",
            ticket=ticket,
            rating=rating,
            can_rate=await helpdesk.satisfaction.can_rate(customer, ticket_id),
            scores=SCORES,
            chosen=rating.rating if rating else None,
            comment=rating.comment if rating else "",
        )

    @post("/")
    async def rate(self, ticket_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Record the rating, then back to the ticket with a thank-you."""
        customer = viewer.require_customer()
        form = await viewer.form()
        raw = text(form, "rating")
        comment = text(form, "comment")
        back = f"/portal/tickets/{ticket_id}"
        try:
            if not raw.isdigit():
                raise ValidationFailed(viewer.t("portal.rate_choose"), field="rating")
            data = SatisfactionInput(rating=int(raw), comment=comment)
            await viewer.helpdesk.satisfaction.rate(customer, ticket_id, data)
        except TicketCoreError as exc:
            ticket = await viewer.helpdesk.tickets.get(customer, ticket_id)
            return viewer.page(
                "portal/rate.html",
                status_code=exc.status_code,
                ticket=ticket,
                rating=await viewer.helpdesk.satisfaction.get(customer, ticket_id),
                can_rate=await viewer.helpdesk.satisfaction.can_rate(customer, ticket_id),
                scores=SCORES,
                chosen=int(raw) if raw.isdigit() else None,
                comment=comment,
                error=exc.message,
            )
        return viewer.redirect(back, done="rated")

"""Customer satisfaction (CSAT): the requester rates a resolved or closed ticket.

Rules, in one place:

- one rating per ticket, from 1 (very unhappy) to 5 (very happy), with an optional comment
  of up to :data:`MAX_COMMENT` characters;
- only the ticket's requester rates it (a customer signed in as that contact); staff read
  ratings but never give them;
- only a resolved or closed ticket can be rated;
- the requester may change the rating while the ticket is resolved and until it has been
  closed for :data:`CHANGE_WINDOW` (7 days); after that it is final;
- each rating or change is a ``satisfaction_rated`` event in the ticket's history (written in
  the same transaction, so ``ticket_event`` hooks and the live feed see it).

``app.satisfaction.summary(...)`` gives the average and count for reports.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.enums import Status
from ticketcore.domain.models import Principal
from ticketcore.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.history import EventDraft, record_events

if TYPE_CHECKING:
    from ticketcore.app import App

MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT = 2000
#: How long after closing a requester may still change their rating.
CHANGE_WINDOW = timedelta(days=7)
RATEABLE = (Status.RESOLVED.value, Status.CLOSED.value)


class SatisfactionInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a requester sends: a rating from 1 to 5 and an optional comment."""

    rating: int
    comment: str = ""


class SatisfactionRating(msgspec.Struct, frozen=True, kw_only=True):
    """The requester's rating of one ticket."""

    ticket_id: int
    rating: int
    comment: str
    created_at: datetime
    updated_at: datetime
    #: Whether the requester may still change it (now).
    changeable: bool = False


class SatisfactionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Ratings given in a period: how many, their average (None without any), and how
    many of each score (``{1: n, ..., 5: n}``)."""

    count: int
    average: float | None
    by_rating: dict[int, int]


def validate(data: SatisfactionInput) -> SatisfactionInput:
    """The input with a trimmed comment; ValidationFailed names the field at fault."""
    if isinstance(data.rating, bool) or not MIN_RATING <= data.rating <= MAX_RATING:
        raise ValidationFailed(
            f"rating must be a whole number from {MIN_RATING} to {MAX_RATING}", field="rating"
        )
    comment = data.comment.strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed(
            f"the comment may have at most {MAX_COMMENT} characters", field="comment"
        )
    return SatisfactionInput(rating=data.rating, comment=comment)


def may_change(status: str, closed_at: datetime | None, now: datetime) -> bool:
    """Whether a rating of a ticket in ``status`` may be given or changed at ``now``."""
    if status == Status.RESOLVED.value:
        return True
    if status != Status.CLOSED.value:
        return False
    return closed_at is None or now - closed_at < CHANGE_WINDOW


class SatisfactionService:
    """Ratings of tickets by their requesters (``app.satisfaction``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def _ticket(self, ticket_id: int, *, lock: bool = False) -> dict[str, Any]:
        suffix = " FOR UPDATE" if lock and not self.db.is_sqlite else ""
        rows = await self.db.fetch(
            f"SELECT id, status, requester, closed_at FROM ticket WHERE id = {{}}{suffix}",
            ticket_id,
        )
        if not rows:
            raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")
        return rows[0]

    async def _rating_row(self, ticket_id: int) -> dict[str, Any] | None:
        rows = await self.db.fetch(
            "SELECT rating, comment, created_at, updated_at FROM satisfaction_rating "
            "WHERE ticket = {}",
            ticket_id,
        )
        return rows[0] if rows else None

    def _rating(self, ticket: dict[str, Any], row: dict[str, Any]) -> SatisfactionRating:
        return SatisfactionRating(
            ticket_id=int(ticket["id"]),
            rating=int(row["rating"]),
            comment=str(row["comment"] or ""),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            changeable=may_change(ticket["status"], ticket["closed_at"], self.app.clock.now()),
        )

    async def get(self, viewer: Principal, ticket_id: int) -> SatisfactionRating | None:
        """The ticket's rating (None if not rated yet): for staff and the requester."""
        ticket = await self._ticket(ticket_id)
        permissions.ensure_can_view(viewer, ticket_id, ticket["requester"])
        row = await self._rating_row(ticket_id)
        return self._rating(ticket, row) if row else None

    async def can_rate(self, viewer: Principal, ticket_id: int) -> bool:
        """Whether ``viewer`` may rate the ticket now (its requester, at the right time)."""
        ticket = await self._ticket(ticket_id)
        permissions.ensure_can_view(viewer, ticket_id, ticket["requester"])
        if viewer.is_staff:
            return False
        return may_change(ticket["status"], ticket["closed_at"], self.app.clock.now())

    async def rate(
        self, viewer: Principal, ticket_id: int, data: SatisfactionInput
    ) -> SatisfactionRating:
        """Record or change the requester's rating; a ``satisfaction_rated`` event records it.

        Raises NotFound for someone else's ticket, PermissionDenied for staff,
        InvalidTransition when the ticket is not resolved or closed (or closed for longer than
        :data:`CHANGE_WINDOW`), ValidationFailed for a bad rating or comment.
        """
        if viewer.is_staff:
            # Staff see every ticket: refusing them before the lookup reveals nothing.
            raise PermissionDenied("only the ticket's requester rates it", field="rating")
        data = validate(data)
        now = self.app.clock.now()
        async with self.db.transaction():
            ticket = await self._ticket(ticket_id, lock=True)
            permissions.ensure_can_view(viewer, ticket_id, ticket["requester"])
            if not may_change(ticket["status"], ticket["closed_at"], now):
                reason = (
                    "it was closed too long ago to change the rating"
                    if ticket["status"] == Status.CLOSED.value
                    else "only a resolved or closed ticket can be rated"
                )
                raise InvalidTransition(f"ticket {ticket_id}: {reason}", field="ticket_id")
            before = await self._rating_row(ticket_id)
            if before is None:
                await self.db.fetch(
                    'INSERT INTO satisfaction_rating (ticket, contact, "user", rating, '
                    "comment, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
                    ticket_id,
                    ticket["requester"],
                    viewer.id,
                    data.rating,
                    data.comment,
                    now,
                    now,
                )
            elif before["rating"] == data.rating and (before["comment"] or "") == data.comment:
                return self._rating(ticket, before)  # nothing changed: no event
            else:
                await self.db.fetch(
                    'UPDATE satisfaction_rating SET rating = {}, comment = {}, "user" = {}, '
                    "updated_at = {} WHERE ticket = {}",
                    data.rating,
                    data.comment,
                    viewer.id,
                    now,
                    ticket_id,
                )
            changes: dict[str, tuple[Any, Any]] = {
                "satisfaction": (before["rating"] if before else None, data.rating)
            }
            event = EventDraft(
                kind="satisfaction_rated",
                changes=changes,
                data={"rating": data.rating, "comment": data.comment},
            )
            await record_events(self.app, ticket_id, viewer.actor, [event], now)
            after = await self._rating_row(ticket_id)
        self.app.jobs.wake()
        assert after is not None
        return self._rating(ticket, after)

    async def summary(
        self,
        viewer: Principal,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> SatisfactionSummary:
        """Ratings last given or changed in ``[since, until)`` (all when unbounded): count,
        average and spread. For staff (one grouped query over the period's index range)."""
        permissions.ensure_staff(viewer, "reading satisfaction reports")
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("updated_at >= {}")
            args.append(since)
        if until is not None:
            where.append("updated_at < {}")
            args.append(until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch(
            f"SELECT rating, COUNT(*) AS n FROM satisfaction_rating {clause} GROUP BY rating",
            *args,
        )
        by_rating = {score: 0 for score in range(MIN_RATING, MAX_RATING + 1)}
        for row in rows:
            by_rating[int(row["rating"])] = int(row["n"])
        count = sum(by_rating.values())
        total = sum(score * n for score, n in by_rating.items())
        return SatisfactionSummary(
            count=count,
            average=round(total / count, 2) if count else None,
            by_rating=by_rating,
        )

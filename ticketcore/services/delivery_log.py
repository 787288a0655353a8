"""The notifiers' delivery log: every attempt to deliver a notification to an endpoint.

Notifiers that talk to outside endpoints (``webhook``, ``chat``) record each attempt with
:meth:`DeliveryLog.record` (outside any transaction, after the attempt); admins read it with
:meth:`DeliveryLog.list` (``GET /api/v1/notification-deliveries``), filtered by notifier,
delivery (the notification's idempotency key), ticket or failures only, newest first. It is
the answer to "did the receiver get it, and what did it say?" across worker processes and
restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.models import Principal
from ticketcore.errors import ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.cursors import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from ticketcore.app import App

MAX_PAGE = 200


class DeliveryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt: ``error`` is None when the endpoint acknowledged (2xx)."""

    id: int
    notifier: str
    delivery: str
    kind: str
    ticket_id: int | None
    target: str
    status: int | None
    error: str | None
    duration_ms: float
    attempted_at: datetime


class DeliveryPage(msgspec.Struct, kw_only=True):
    """One page of the log, newest first."""

    items: list[DeliveryRecord]
    next_cursor: str | None


class DeliveryLog:
    """Record and read delivery attempts (``app.delivery_log``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def record(
        self,
        *,
        notifier: str,
        delivery: str,
        target: str,
        status: int | None,
        error: str | None,
        duration_ms: float,
        kind: str = "",
        ticket_id: int | None = None,
    ) -> None:
        """Append one attempt. ``target`` must already be stripped of secrets."""
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO notification_delivery (notifier, delivery, kind, ticket_id, target, "
                "status, error, duration_ms, attempted_at) "
                "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
                notifier[:50],
                delivery[:200],
                kind[:50],
                ticket_id,
                target[:300],
                status,
                error[:2000] if error else None,
                float(duration_ms),
                self.app.clock.now(),
            )

    async def list(
        self,
        viewer: Principal,
        *,
        notifier: str | None = None,
        delivery: str | None = None,
        ticket_id: int | None = None,
        failed_only: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """Attempts, newest first, keyset-paginated (admins)."""
        permissions.ensure_admin(viewer, "reading the delivery log")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        where: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("notifier = {}", notifier),
            ("delivery = {}", delivery),
            ("ticket_id = {}", ticket_id),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        if failed_only:
            where.append("error IS NOT NULL")
        if cursor:
            where.append("id < {}")
            args.append(decode_cursor("d", cursor))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch(
            f"SELECT * FROM notification_delivery {clause} ORDER BY id DESC LIMIT {{}}",
            *args,
            limit + 1,
        )
        items = [
            DeliveryRecord(
                id=r["id"],
                notifier=r["notifier"],
                delivery=r["delivery"],
                kind=r["kind"],
                ticket_id=r["ticket_id"],
                target=r["target"],
                status=r["status"],
                error=r["error"],
                duration_ms=float(r["duration_ms"]),
                attempted_at=r["attempted_at"],
            )
            for r in rows[:limit]
        ]
        more = len(rows) > limit
        return DeliveryPage(
            items=items, next_cursor=encode_cursor("d", items[-1].id) if more else None
        )

"""Agents' in-app notifications: the inbox behind the bell in the agent workspace.

Producers (the ``in_app`` notifier plugin: assignments, @mentions, SLA alerts) call
:meth:`AgentNotificationService.add`; the web API and pages call :meth:`list_for`,
:meth:`unread_count` and :meth:`mark_read`. Adding is idempotent: one row per user and
idempotency key (a unique index), so an event delivered twice notifies once.
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.models import Principal
from ticketcore.errors import ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.cursors import decode_cursor, encode_cursor
from ticketcore.services.mentions import StaffMember, handles, mentioned
from ticketcore.services.rows import dump_json, load_json

if TYPE_CHECKING:
    from ticketcore.app import App

MAX_PAGE = 100


class AgentNotification(msgspec.Struct, frozen=True, kw_only=True):
    """One notification in an agent's inbox."""

    id: int
    user_id: int
    kind: str
    ticket_id: int | None
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None = None

    @property
    def unread(self) -> bool:
        """Whether the agent has not read it yet."""
        return self.read_at is None


class NotificationPage(msgspec.Struct, kw_only=True):
    """One page of an inbox, newest first; ``unread`` counts all unread notifications."""

    items: list[AgentNotification]
    next_cursor: str | None
    unread: int


def _from_row(row: dict[str, Any]) -> AgentNotification:
    return AgentNotification(
        id=row["id"],
        user_id=row["user"],
        kind=row["kind"],
        ticket_id=row["ticket_id"],
        title=row["title"],
        body=row["body"],
        data=load_json(row["data"]) or {},
        created_at=row["created_at"],
        read_at=row["read_at"],
    )


class AgentNotificationService:
    """Write and read agents' in-app notifications (``app.agent_notifications``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    # --- producing --------------------------------------------------------------------------

    async def add(
        self,
        user_ids: Iterable[int],
        *,
        kind: str,
        key: str,
        title: str,
        body: str = "",
        ticket_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        """Notify each of ``user_ids`` once per ``key``; return how many rows are new.

        Idempotent: a user who already has a notification with ``key`` gets no second one.
        """
        users = list(dict.fromkeys(user_ids))
        if not users:
            return 0
        now = self.app.clock.now()
        values = ", ".join(["({}, {}, {}, {}, {}, {}, {}, {})"] * len(users))
        args: list[Any] = []
        for user in users:
            args += [user, kind, ticket_id, title[:500], body, dump_json(data or {}), key, now]
        async with self.db.transaction():
            rows = await self.db.fetch(
                'INSERT INTO agent_notification ("user", kind, ticket_id, title, body, data, '
                f"idempotency_key, created_at) VALUES {values} "
                'ON CONFLICT ("user", idempotency_key) DO NOTHING RETURNING id',
                *args,
            )
        return len(rows)

    async def staff(self) -> builtins.list[StaffMember]:
        """Active admins and agents, for resolving mentions and addresses."""
        rows = await self.db.fetch(
            "SELECT id, name, email FROM app_user WHERE active = {} "
            "AND role IN ('agent', 'admin') ORDER BY id",
            True,
        )
        return [StaffMember(id=r["id"], name=r["name"], email=r["email"]) for r in rows]

    async def mentioned_staff(self, text: str) -> builtins.list[StaffMember]:
        """The active staff that ``text`` @mentions (nothing is read without an ``@``)."""
        if "@" not in text or not handles(text):
            return []
        return mentioned(text, await self.staff())

    async def staff_ids_by_email(self, emails: Iterable[str]) -> builtins.list[int]:
        """The ids of active staff with these e-mail addresses (case-insensitive)."""
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        if not wanted:
            return []
        marks = ", ".join(["{}"] * len(wanted))
        rows = await self.db.fetch(
            f"SELECT id FROM app_user WHERE lower(email) IN ({marks}) AND active = {{}} "
            "AND role IN ('agent', 'admin') ORDER BY id",
            *wanted,
            True,
        )
        return [r["id"] for r in rows]

    async def is_active_staff(self, user_id: int) -> bool:
        """Whether ``user_id`` is an active admin or agent."""
        rows = await self.db.fetch(
            "SELECT id FROM app_user WHERE id = {} AND active = {} AND role IN ('agent', 'admin')",
            user_id,
            True,
        )
        return bool(rows)

    # --- reading ----------------------------------------------------------------------------

    async def list_for(
        self,
        user_id: int,
        *,
        unread_only: bool = False,
        limit: int = 25,
        cursor: str | None = None,
    ) -> NotificationPage:
        """``user_id``'s notifications, newest first, keyset-paginated, with the unread count."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        where = ['"user" = {}']
        args: list[Any] = [user_id]
        if unread_only:
            where.append("read_at IS NULL")
        if cursor:
            where.append("id < {}")
            args.append(decode_cursor("n", cursor))
        rows = await self.db.fetch(
            f"SELECT * FROM agent_notification WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT {}",
            *args,
            limit + 1,
        )
        items = [_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return NotificationPage(
            items=items,
            next_cursor=encode_cursor("n", items[-1].id) if more else None,
            unread=await self.unread_count(user_id),
        )

    async def unread_count(self, user_id: int) -> int:
        """How many notifications ``user_id`` has not read (the partial index answers)."""
        value = await self.db.fetchval(
            'SELECT COUNT(*) AS n FROM agent_notification WHERE "user" = {} AND read_at IS NULL',
            user_id,
        )
        return int(value or 0)

    async def mark_read(
        self, user_id: int, ids: Iterable[int] | None = None, *, up_to: int | None = None
    ) -> int:
        """Mark ``user_id``'s notifications read: those in ``ids``, or every one up to id
        ``up_to`` (inclusive), or all when neither is given. Other users' notifications are
        never touched. Returns how many changed from unread to read."""
        where = ['"user" = {}', "read_at IS NULL"]
        args: list[Any] = [self.app.clock.now(), user_id]
        if ids is not None:
            chosen = sorted(set(ids))
            if not chosen:
                return 0
            where.append(f"id IN ({', '.join(['{}'] * len(chosen))})")
            args += chosen
        if up_to is not None:
            where.append("id <= {}")
            args.append(up_to)
        async with self.db.transaction():
            rows = await self.db.fetch(
                f"UPDATE agent_notification SET read_at = {{}} WHERE {' AND '.join(where)} "
                "RETURNING id",
                *args,
            )
        return len(rows)

    # --- for the API: the signed-in agent's own inbox ---------------------------------------

    async def inbox(
        self,
        viewer: Principal,
        *,
        unread_only: bool = False,
        limit: int = 25,
        cursor: str | None = None,
    ) -> NotificationPage:
        """The signed-in staff member's notifications (customers have none)."""
        permissions.ensure_staff(viewer, "reading agent notifications")
        return await self.list_for(viewer.id, unread_only=unread_only, limit=limit, cursor=cursor)

    async def unread_for(self, viewer: Principal) -> int:
        """The signed-in staff member's unread count (the badge)."""
        permissions.ensure_staff(viewer, "reading agent notifications")
        return await self.unread_count(viewer.id)

    async def mark_read_for(
        self, viewer: Principal, ids: Iterable[int] | None = None, *, up_to: int | None = None
    ) -> int:
        """Mark the signed-in staff member's own notifications read (see :meth:`mark_read`)."""
        permissions.ensure_staff(viewer, "reading agent notifications")
        return await self.mark_read(viewer.id, ids, up_to=up_to)

"""The agent's queue views: which tickets each shows, and counts that stay fast.

Each view is a set of (column, value, status) index ranges. A page of a view is read as one
``UNION ALL`` of per-range keyset scans (each served by an index in id order, at most
``limit`` rows each), merged by id: the cost depends on the page size, not on how many
tickets the view holds. Counts stop at ``COUNT_CAP`` ("1000+").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketcore.app import App
from ticketcore.domain.enums import Status
from ticketcore.domain.models import Principal, Ticket
from ticketcore.services.rows import TICKET_COLUMNS, TICKET_FROM, ticket_from_row

COUNT_CAP = 1000
ACTIVE = (Status.NEW.value, Status.OPEN.value)
WAITING = (Status.PENDING_CUSTOMER.value, Status.ON_HOLD.value)
VIEWS = ("mine", "unassigned", "team", "pending", "at_risk")
#: "SLA at risk": a running SLA clock due within this time, or already breached.
AT_RISK_WITHIN = timedelta(hours=2)


@dataclass(frozen=True)
class Scope:
    """One index range: ``column = value`` (or IS NULL) and ``status = status``."""

    column: str
    value: int | None
    status: str

    def clause(self) -> tuple[str, list[Any]]:
        """SQL condition and its arguments.

        The status is written as a one-value range and the rows are ordered by
        ``(status, id)``, not ``id`` alone: only the ``(column, status, id)`` index gives
        that order, so PostgreSQL cannot pick a backward scan of the primary key filtered
        on the range. It did when its estimate of the range was far too high (it assumes
        the assignee and the status independent): an empty "my new tickets" range then
        scanned the whole table, 0.5 s with a million tickets.
        """
        status = "t.status >= {} AND t.status <= {}"
        if self.value is None:
            return f"t.{self.column} IS NULL AND {status}", [self.status, self.status]
        return f"t.{self.column} = {{}} AND {status}", [self.value, self.status, self.status]


async def team_ids(helpdesk: App, user_id: int) -> list[int]:
    """The teams an agent belongs to."""
    rows = await helpdesk.db.fetch(
        'SELECT team FROM team_member WHERE "user" = {} ORDER BY team', user_id
    )
    return [int(r["team"]) for r in rows]


def scopes(view: str, agent: Principal, teams: list[int]) -> list[Scope]:
    """The index ranges of a view for one agent."""
    if view == "mine":
        return [Scope("assignee", agent.id, s) for s in ACTIVE]
    if view == "unassigned":
        return [Scope("assignee", None, s) for s in ACTIVE]
    if view == "team":
        return [Scope("team", team, s) for team in teams for s in ACTIVE]
    if view == "pending":
        return [Scope("assignee", agent.id, s) for s in WAITING]
    raise ValueError(view)


async def view_page(
    helpdesk: App, ranges: list[Scope], limit: int = 25, before: int | None = None
) -> tuple[list[Ticket], int | None]:
    """Newest first: a page of tickets and the id to continue before (None at the end)."""
    if not ranges:
        return [], None
    parts: list[str] = []
    args: list[Any] = []
    for i, scope in enumerate(ranges):
        clause, values = scope.clause()
        if before is not None:
            clause += " AND t.id < {}"
            values.append(before)
        parts.append(
            f"SELECT id FROM (SELECT t.id FROM ticket t WHERE {clause} "
            f"ORDER BY t.status DESC, t.id DESC LIMIT {{}}) AS r{i}"
        )
        args += [*values, limit + 1]
    union = " UNION ALL ".join(parts)
    ids = [
        int(r["id"])
        for r in await helpdesk.db.fetch(f"{union} ORDER BY id DESC LIMIT {{}}", *args, limit + 1)
    ]
    more = len(ids) > limit
    ids = ids[:limit]
    if not ids:
        return [], None
    marks = ", ".join("{}" for _ in ids)
    rows = await helpdesk.db.fetch(
        f"SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.id IN ({marks}) ORDER BY t.id DESC", *ids
    )
    return [ticket_from_row(r) for r in rows], (ids[-1] if more else None)


async def at_risk_page(helpdesk: App, now: datetime, limit: int = 25) -> list[Ticket]:
    """The tickets whose SLA is due soonest (or is breached), most urgent first: a range
    scan of the partial index on ``sla_due_at``."""
    rows = await helpdesk.db.fetch(
        f"SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.sla_due_at IS NOT NULL "
        "AND t.sla_due_at <= {} ORDER BY t.sla_due_at, t.id LIMIT {}",
        now + AT_RISK_WITHIN,
        limit,
    )
    return [ticket_from_row(r) for r in rows]


async def at_risk_count(helpdesk: App, now: datetime) -> int:
    """How many tickets are at risk, up to ``COUNT_CAP + 1``."""
    value = await helpdesk.db.fetchval(
        "SELECT COUNT(*) FROM (SELECT 1 FROM ticket t WHERE t.sla_due_at IS NOT NULL "
        "AND t.sla_due_at <= {} ORDER BY t.sla_due_at LIMIT {}) AS c",
        now + AT_RISK_WITHIN,
        COUNT_CAP + 1,
    )
    return int(value or 0)


async def count(helpdesk: App, ranges: list[Scope]) -> int:
    """How many tickets a view holds, up to ``COUNT_CAP + 1`` (one query)."""
    if not ranges:
        return 0
    parts: list[str] = []
    args: list[Any] = []
    for i, scope in enumerate(ranges):
        clause, values = scope.clause()
        parts.append(
            f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM ticket t WHERE {clause} "
            f"ORDER BY t.status, t.id LIMIT {{}}) AS c{i}"
        )
        args += [*values, COUNT_CAP + 1]
    rows = await helpdesk.db.fetch(" UNION ALL ".join(parts), *args)
    return min(sum(int(r["n"]) for r in rows), COUNT_CAP + 1)


def count_label(n: int) -> str:
    """``"12"``, or ``"1000+"`` when the cap was reached."""
    return f"{COUNT_CAP}+" if n > COUNT_CAP else str(n)


async def all_counts(helpdesk: App, agent: Principal, teams: list[int]) -> dict[str, str]:
    """The count label of every view."""
    counts = {
        view: count_label(await count(helpdesk, scopes(view, agent, teams)))
        for view in VIEWS
        if view != "at_risk"
    }
    counts["at_risk"] = count_label(await at_risk_count(helpdesk, helpdesk.clock.now()))
    return counts

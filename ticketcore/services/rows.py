"""Turning database rows into domain snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ticketcore.domain.enums import EntryKind, LinkKind, Priority, Role, Status
from ticketcore.domain.models import (
    Actor,
    AttachmentInfo,
    Contact,
    Entry,
    FieldChange,
    Link,
    Ticket,
    TicketEvent,
    TicketSla,
)

TICKET_COLUMNS = (
    "t.id, t.key, t.subject, t.status, t.priority, t.category, t.channel, t.team, "
    "t.assignee, t.custom_fields, t.tags, t.version, t.created_at, t.updated_at, "
    "t.first_response_at, t.resolved_at, t.closed_at, t.requester, "
    "t.sla_policy, t.first_response_due_at, t.next_response_due_at, t.resolution_due_at, "
    "t.sla_paused_at, t.sla_pauses, t.sla_reply_since, "
    "c.name AS c_name, c.email AS c_email, c.phone AS c_phone, c.organisation AS c_org, "
    "c.vip AS c_vip, o.name AS o_name, o.vip AS o_vip"
)
TICKET_FROM = (
    "FROM ticket t JOIN contact c ON c.id = t.requester "
    "LEFT JOIN organisation o ON o.id = c.organisation"
)


# Enum lookups by value: a dict is several times cheaper than calling the Enum class, and
# ticket lists build thousands of these.
_STATUS = {s.value: s for s in Status}
_PRIORITY = {p.value: p for p in Priority}
_EMPTY_JSON: dict[str, Any] = {"[]": list, "{}": dict}


def load_json(value: Any) -> Any:
    """JSON columns come back as text on both engines; decode when needed."""
    if value is None or isinstance(value, dict | list):
        return value
    empty = _EMPTY_JSON.get(value) if isinstance(value, str) else None
    return empty() if empty else msgspec.json.decode(value)


def dump_json(value: Any) -> str:
    """Encode a value for a JSON column."""
    return msgspec.json.encode(value).decode()


_NO_SLA = TicketSla()
_PAUSES = msgspec.json.Decoder(list[tuple[datetime, datetime]])


def sla_from_row(row: dict[str, Any]) -> TicketSla:
    """The SLA part of a ticket row (selected with TICKET_COLUMNS)."""
    policy = row["sla_policy"]
    pauses = row["sla_pauses"]
    paused = row["sla_paused_at"]
    if policy is None and paused is None and pauses in ("[]", None, []):
        return _NO_SLA  # most tickets of a helpdesk without SLA: no work per row
    if isinstance(pauses, str):
        pauses = _PAUSES.decode(pauses) if pauses != "[]" else []
    elif pauses:
        pauses = msgspec.convert(pauses, list[tuple[datetime, datetime]])
    return TicketSla(
        policy=policy,
        first_response_due_at=row["first_response_due_at"],
        next_response_due_at=row["next_response_due_at"],
        resolution_due_at=row["resolution_due_at"],
        paused_since=paused,
        pauses=pauses or [],
        awaiting_reply_since=row["sla_reply_since"],
    )


def ticket_from_row(
    row: dict[str, Any], links: list[Link] | None = None, description: str = ""
) -> Ticket:
    """Build a Ticket snapshot from a row selected with TICKET_COLUMNS."""
    return Ticket(
        id=row["id"],
        key=row["key"],
        subject=row["subject"],
        status=_STATUS[row["status"]],
        priority=_PRIORITY[row["priority"]],
        category=row["category"],
        channel=row["channel"],
        requester=Contact(
            id=row["requester"],
            name=row["c_name"],
            email=row["c_email"],
            phone=row["c_phone"],
            organisation_id=row["c_org"],
            organisation=row["o_name"],
            vip=bool(row["c_vip"]) or bool(row["o_vip"]),
        ),
        team_id=row["team"],
        assignee_id=row["assignee"],
        tags=load_json(row["tags"]) or [],
        custom_fields=load_json(row["custom_fields"]) or {},
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        first_response_at=row["first_response_at"],
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
        description=description,
        links=links or [],
        sla=sla_from_row(row),
    )


def actor_from_row(row: dict[str, Any], prefix: str) -> Actor:
    """The actor stored in ``<prefix>_kind``, ``<prefix>_id``, ``<prefix>_name`` columns."""
    kind = row[f"{prefix}_kind"]
    role = row.get(f"{prefix}_role")
    return Actor(
        kind=kind,
        id=row[f"{prefix}_id"],
        name=row[f"{prefix}_name"] or "",
        role=Role(role) if role else None,
    )


def event_from_row(row: dict[str, Any]) -> TicketEvent:
    """A history event from a ``ticket_event`` row."""
    changes = load_json(row["changes"]) or {}
    return TicketEvent(
        id=row["id"],
        ticket_id=row["ticket"],
        kind=row["kind"],
        actor=actor_from_row(row, "actor"),
        created_at=row["created_at"],
        changes={k: FieldChange(v[0], v[1]) for k, v in changes.items()},
        data=load_json(row["data"]) or {},
    )


def entry_from_row(row: dict[str, Any], attachments: list[AttachmentInfo]) -> Entry:
    """A conversation entry from an ``entry`` row."""
    return Entry(
        id=row["id"],
        ticket_id=row["ticket"],
        kind=EntryKind(row["kind"]),
        author=actor_from_row(row, "author"),
        body_text=row["body_text"] or "",
        body_html=row["body_html"],
        created_at=row["created_at"],
        attachments=attachments,
    )


def link_from_row(row: dict[str, Any]) -> Link:
    """A link from a ``ticket_link`` row."""
    return Link(kind=LinkKind(row["kind"]), ticket_id=row["other"])


def attachment_from_row(row: dict[str, Any]) -> AttachmentInfo:
    """Attachment metadata from an ``attachment`` row."""
    return AttachmentInfo(
        id=row["id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
    )

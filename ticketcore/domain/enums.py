"""Enumerations shared by the domain, the database and the API."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """How urgent a ticket is, lowest first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for critical: for comparisons and raising."""
        return list(Priority).index(self)


class Status(StrEnum):
    """Where a ticket stands in its life."""

    NEW = "new"
    OPEN = "open"
    PENDING_CUSTOMER = "pending_customer"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Role(StrEnum):
    """What a user may do: admins configure, agents work tickets, customers follow their own."""

    ADMIN = "admin"
    AGENT = "agent"
    CUSTOMER = "customer"

    @property
    def is_staff(self) -> bool:
        """Admins and agents see every ticket and internal notes."""
        return self is not Role.CUSTOMER


class EntryKind(StrEnum):
    """One item of a ticket's conversation."""

    MESSAGE_IN = "message_in"  # from the requester or another outside party
    MESSAGE_OUT = "message_out"  # a public reply from an agent
    NOTE = "note"  # internal: never shown to a customer, in any channel
    SYSTEM = "system"  # recorded by the helpdesk itself, e.g. a delivery failure


class LinkKind(StrEnum):
    """How two tickets relate."""

    PARENT = "parent"  # the other ticket is this one's parent
    MERGED_INTO = "merged_into"
    RELATED = "related"

"""TicketCore: a helpdesk framework composed from plugins.

This module is the public API that plugins use. It stays cheap to import: the application
(database, web) is loaded only when ``create_helpdesk`` or ``App`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ticketcore.config import Settings, load_settings
from ticketcore.domain.enums import EntryKind, LinkKind, Priority, Role, Status
from ticketcore.domain.models import (
    Actor,
    AgentSnapshot,
    AttachmentInfo,
    Availability,
    Classification,
    Contact,
    Entry,
    EscalationStep,
    FieldChange,
    InboundMessage,
    KbHit,
    Link,
    Notification,
    Principal,
    RouteDecision,
    RoutingContext,
    Screening,
    SlaAlert,
    SlaTargets,
    TeamSnapshot,
    Ticket,
    TicketEvent,
    TicketSla,
    WorkingHours,
)
from ticketcore.errors import (
    ConfigError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    TicketCoreError,
    ValidationFailed,
    VersionConflict,
)
from ticketcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from ticketcore.app import App, create_helpdesk

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "AgentSnapshot",
    "App",
    "AttachmentInfo",
    "Availability",
    "Classification",
    "ConfigError",
    "Contact",
    "Entry",
    "EntryKind",
    "EscalationStep",
    "FieldChange",
    "InboundMessage",
    "InvalidTransition",
    "KbHit",
    "Link",
    "LinkKind",
    "NotFound",
    "Notification",
    "PermissionDenied",
    "Principal",
    "Priority",
    "Role",
    "RouteDecision",
    "RoutingContext",
    "Screening",
    "Settings",
    "SlaAlert",
    "SlaTargets",
    "Status",
    "TeamSnapshot",
    "Ticket",
    "TicketCoreError",
    "TicketEvent",
    "TicketSla",
    "ValidationFailed",
    "VersionConflict",
    "WorkingHours",
    "create_helpdesk",
    "hookimpl",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    if name in ("App", "create_helpdesk"):
        from ticketcore import app

        return getattr(app, name)
    raise AttributeError(f"module 'ticketcore' has no attribute {name!r}")

"""Input types of the ticket commands, shared by the API, the CLI and plugins.

Strict: unknown fields are refused, so a typo never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ticketcore.domain.enums import LinkKind, Priority, Role
from ticketcore.domain.models import Availability, WorkingHours

_Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Command(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RequesterInput(_Command, kw_only=True):
    """Who asks: an existing contact id, or an e-mail (and name) to find or create one."""

    id: int | None = None
    email: str | None = None
    name: str | None = None
    phone: str | None = None


class AttachmentUpload(_Command, kw_only=True):
    """A file sent with an entry, base64-encoded in JSON."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content_type: str = "application/octet-stream"
    content_base64: str


class NewTicket(_Command, kw_only=True):
    """Open a ticket."""

    subject: _Text
    body: str = ""
    body_html: str | None = None
    requester: RequesterInput | None = None
    priority: Priority = Priority.NORMAL
    category: str | None = None
    channel: str = "api"
    team_id: int | None = None
    assignee_id: int | None = None
    tags: list[str] = []
    custom_fields: dict[str, Any] = {}
    attachments: list[AttachmentUpload] = []
    message_id: str | None = None


class TicketPatch(_Command, kw_only=True):
    """Change fields of a ticket; absent fields stay as they are. ``version`` is required
    unless sent as an ``If-Match`` header."""

    version: int | None = None
    subject: str | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    category: str | msgspec.UnsetType | None = msgspec.UNSET
    team_id: int | msgspec.UnsetType | None = msgspec.UNSET
    assignee_id: int | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET
    custom_fields: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class NewEntry(_Command, kw_only=True):
    """A public message or an internal note."""

    body: str = ""
    body_html: str | None = None
    attachments: list[AttachmentUpload] = []
    message_id: str | None = None


class TransitionRequest(_Command, kw_only=True):
    """Move a ticket through its lifecycle, e.g. ``{"transition": "resolve"}``."""

    transition: _Text
    version: int | None = None
    comment: str | None = None


class LinkRequest(_Command, kw_only=True):
    """Relate this ticket to another."""

    kind: LinkKind
    ticket_id: int


class TicketFilters(_Command, kw_only=True):
    """Filters of the ticket list; all optional, combined with AND."""

    status: str | None = None
    priority: Priority | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    requester_id: int | None = None
    category: str | None = None
    tag: str | None = None
    q: str | None = None


class NewUser(_Command, kw_only=True):
    """Create a user who signs in."""

    email: _Text
    name: _Text
    role: Role
    password: str | None = None
    team_ids: list[int] = []


class RoutingProfilePatch(_Command, kw_only=True):
    """Change how routing sees an agent; absent fields stay as they are. Agents may change
    their own ``availability`` and ``working_hours``; ``capacity`` and ``skills`` are for
    admins."""

    availability: Availability | msgspec.UnsetType = msgspec.UNSET
    #: Weekly shifts; null removes them (always on shift).
    working_hours: WorkingHours | msgspec.UnsetType | None = msgspec.UNSET
    capacity: int | msgspec.UnsetType | None = msgspec.UNSET
    #: Replaces every skill: ``{"postgres": 4}``, levels from 1 to 5.
    skills: dict[str, int] | msgspec.UnsetType = msgspec.UNSET


class NewMacro(_Command, kw_only=True):
    """A canned response. ``body`` may use ``{{ ticket.number }}``, ``{{ ticket.subject }}``,
    ``{{ requester.name }}`` and ``{{ agent.name }}``."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: str = ""
    internal: bool = False
    set_priority: Priority | None = None
    set_category: str | None = None
    add_tags: list[str] = []
    transition: str | None = None


class ApplyMacro(_Command, kw_only=True):
    """Apply a macro to a ticket."""

    ticket_id: int

"""Immutable value types passed to hooks and returned by services.

They are msgspec Structs: cheap to build, typed, and encoded to JSON by the API as they are.
Hooks receive these snapshots, never database rows, so a plugin cannot reach past the core.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ticketcore.domain.enums import EntryKind, LinkKind, Priority, Role, Status


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who did something: a user, a contact writing in, a plugin or the system itself."""

    kind: Literal["user", "contact", "plugin", "system"]
    id: int | None = None
    name: str = ""
    role: Role | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """The helpdesk acting on its own (timers, workers)."""
        return cls(kind="system", name=name)

    @classmethod
    def plugin(cls, name: str) -> Actor:
        """A plugin acting, e.g. a routing strategy; ``name`` is the plugin's."""
        return cls(kind="plugin", name=name)


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """A person who writes in: the requester of tickets."""

    id: int
    name: str
    email: str | None = None
    phone: str | None = None
    organisation_id: int | None = None
    organisation: str | None = None
    vip: bool = False


class AttachmentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Metadata of a stored attachment; the bytes are fetched separately."""

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a conversation: a public message, an internal note or a system note."""

    id: int
    ticket_id: int
    kind: EntryKind
    author: Actor
    body_text: str
    body_html: str | None
    created_at: datetime
    attachments: list[AttachmentInfo] = []

    @property
    def is_public(self) -> bool:
        """Whether a customer may see this entry."""
        return self.kind in (EntryKind.MESSAGE_IN, EntryKind.MESSAGE_OUT)


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """A relation from one ticket to another."""

    kind: LinkKind
    ticket_id: int


#: The service-level targets a policy can set.
SlaTarget = Literal["first_response", "next_response", "resolution"]
SLA_TARGETS: tuple[SlaTarget, ...] = ("first_response", "next_response", "resolution")
#: When an alert fires: at the policy's warning share of the time, or at the due time.
SlaStage = Literal["warning", "breach"]


class TicketSla(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket's SLA clock as stored: what ``compute_sla`` decided, and what it needs.

    Due times are None when the target does not apply, is met, or while the clock is
    paused (the ticket waits on the customer or is on hold: ``paused_since`` is set).
    ``pauses`` are the finished pauses, oldest first. ``awaiting_reply_since`` is when the
    customer's oldest unanswered message arrived after the first response: the start of
    the next-response clock.
    """

    policy: str | None = None
    first_response_due_at: datetime | None = None
    next_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    paused_since: datetime | None = None
    pauses: list[tuple[datetime, datetime]] = []
    awaiting_reply_since: datetime | None = None

    def due(self, target: SlaTarget) -> datetime | None:
        """The due time of ``target``."""
        value: datetime | None = getattr(self, f"{target}_due_at")
        return value


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a ticket as stored at one version."""

    id: int
    key: str
    subject: str
    status: Status
    priority: Priority
    category: str | None
    channel: str
    requester: Contact
    team_id: int | None
    assignee_id: int | None
    tags: list[str]
    custom_fields: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    description: str = ""
    links: list[Link] = []
    #: Service-level state: the policy applied, due times and the pauses of the clock.
    sla: TicketSla = msgspec.field(default_factory=TicketSla)

    @property
    def number(self) -> str:
        """The human reference, e.g. ``#5023``."""
        return f"#{self.id}"


class FieldChange(msgspec.Struct, frozen=True, array_like=True):
    """Old and new value of one field in one event."""

    old: Any
    new: Any


class TicketEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded change: the ticket's history is the list of these."""

    id: int
    ticket_id: int
    kind: str
    actor: Actor
    created_at: datetime
    changes: dict[str, FieldChange] = {}
    data: dict[str, Any] = {}


#: An agent's presence: only ``online`` agents get routed tickets.
Availability = Literal["online", "away", "offline"]
AVAILABILITY_STATES: tuple[Availability, ...] = ("online", "away", "offline")
#: Statuses that count towards an agent's load (``AgentSnapshot.open_tickets``).
OPEN_STATUSES: tuple[Status, ...] = (
    Status.NEW,
    Status.OPEN,
    Status.PENDING_CUSTOMER,
    Status.ON_HOLD,
)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(value: str) -> int | None:
    """Minutes since midnight of ``"HH:MM"`` (``"24:00"`` is the end of the day)."""
    if value == "24:00":
        return 24 * 60
    found = _HHMM.match(value)
    return int(found[1]) * 60 + int(found[2]) if found else None


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class WorkingHours(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An agent's weekly shifts in their own time zone, e.g.
    ``{"timezone": "Europe/Paris", "week": {"mon": [["09:00", "12:30"], ["13:30", "18:00"]]}}``.

    Shifts are half-open ``[start, end)`` within one local day (``"24:00"`` ends at midnight);
    days not listed are days off. Outside working hours an agent gets no routed tickets.
    """

    timezone: str = "UTC"
    week: dict[Weekday, list[tuple[str, str]]] = {}

    def problems(self) -> list[str]:
        """What is wrong with these hours (empty when valid)."""
        found: list[str] = []
        try:
            _zone(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            found.append(f"timezone: unknown time zone {self.timezone!r}")
        for day, shifts in self.week.items():
            for i, (start, end) in enumerate(shifts):
                begin, finish = _minutes(start), _minutes(end)
                if begin is None or finish is None or begin >= 24 * 60:
                    found.append(f"week.{day}[{i}]: times are HH:MM, e.g. 09:00-17:30")
                elif begin >= finish:
                    found.append(f"week.{day}[{i}]: {start} is not before {end}")
        return found

    def is_working(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls in a shift."""
        local = at.astimezone(_zone(self.timezone))
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        for start, end in self.week.get(WEEKDAYS[local.weekday()], []):
            begin, finish = _minutes(start), _minutes(end)
            if begin is not None and finish is not None and begin <= minute < finish:
                return True
        return False


class AgentSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What a routing strategy may know of an agent (one copy per team the agent is in).

    ``available`` is the account's switch for taking routed tickets at all;
    ``availability`` is the agent's presence. A strategy assigns only agents for which
    :attr:`routable` is true. ``skills`` maps a skill name (lower case) to a level from 1
    (junior) to 5 (expert). ``open_tickets`` counts the agent's tickets in any team whose
    status is one of :data:`OPEN_STATUSES`, including those assigned earlier in the same
    routing batch. ``last_assigned_at`` is per team (round-robin state). ``on_shift`` says
    whether ``RoutingContext.now`` is within the agent's :class:`WorkingHours` (always true
    for an agent without working hours).
    """

    id: int
    name: str
    available: bool = True
    availability: Availability = "online"
    capacity: int | None = None
    last_assigned_at: datetime | None = None
    skills: dict[str, int] = {}
    open_tickets: int = 0
    on_shift: bool = True

    @property
    def routable(self) -> bool:
        """Whether routing may assign this agent: switched on, online and on shift."""
        return self.available and self.availability == "online" and self.on_shift


class RoutingProfile(msgspec.Struct, frozen=True, kw_only=True):
    """How routing sees one agent: presence, working hours, capacity and skills."""

    user_id: int
    available: bool
    availability: Availability
    capacity: int | None
    skills: dict[str, int]
    open_tickets: int
    working_hours: WorkingHours | None = None
    #: Whether the agent is within working hours now.
    on_shift: bool = True


class TeamSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A team and its members, as the router sees them."""

    id: int
    name: str
    slug: str
    agents: list[AgentSnapshot] = []


class RoutingContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a pure routing decision may use besides the ticket."""

    now: datetime
    teams: dict[int, TeamSnapshot]
    team_slugs: dict[str, int]

    def team_to_staff(self, ticket: Ticket, default_slug: str | None = None) -> TeamSnapshot | None:
        """The team an agent-picking strategy should staff the ticket from: its team, else the
        team named ``default_slug``; None when the ticket already has an agent or no known
        team applies."""
        if ticket.assignee_id is not None:
            return None
        team_id = ticket.team_id
        if team_id is None and default_slug:
            team_id = self.team_slugs.get(default_slug)
        return self.teams.get(team_id) if team_id is not None else None


class RouteDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A routing strategy's answer: a team, an agent, or both, with the reason for history."""

    reason: str
    team_id: int | None = None
    assignee_id: int | None = None
    final: bool = False  # stop the chain even without an assignee


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """A triage plugin's suggestion; None fields leave the ticket as it is."""

    reason: str
    category: str | None = None
    priority: Priority | None = None
    tags: list[str] = []


class SlaTargets(msgspec.Struct, frozen=True, kw_only=True):
    """Due times computed by an SLA policy, and when to warn before each.

    A target left None does not apply (or is met). A ``*_warning`` time, when given, is the
    instant at which the policy's warning share of that target's time has run.
    """

    policy: str
    first_response_due: datetime | None = None
    next_response_due: datetime | None = None
    resolution_due: datetime | None = None
    first_response_warning: datetime | None = None
    next_response_warning: datetime | None = None
    resolution_warning: datetime | None = None

    def due(self, target: SlaTarget) -> datetime | None:
        """The due time of ``target``."""
        value: datetime | None = getattr(self, f"{target}_due")
        return value

    def warning(self, target: SlaTarget) -> datetime | None:
        """When to warn about ``target``."""
        value: datetime | None = getattr(self, f"{target}_warning")
        return value


class SlaAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A warning or a breach of one SLA target of one ticket, as the escalation hook sees it.

    ``team_slug`` and ``assignee_email`` let a policy name its recipients without I/O.
    """

    ticket_id: int
    policy: str | None
    target: SlaTarget
    stage: SlaStage
    due_at: datetime
    team_slug: str | None = None
    assignee_email: str | None = None


class EscalationStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of an escalation chain; exactly one action is set.

    ``notify``: e-mail addresses to send an SLA notification to; ``raise_priority``: a
    priority the ticket gets at least; ``reassign_team``: the slug of a team the ticket
    moves to (its assignee is cleared so that the team picks it up).
    """

    name: str = ""
    notify: list[str] = []
    raise_priority: Priority | None = None
    reassign_team: str | None = None

    @property
    def action(self) -> str:
        """``notify``, ``raise_priority`` or ``reassign_team``."""
        if self.raise_priority is not None:
            return "raise_priority"
        if self.reassign_team is not None:
            return "reassign_team"
        return "notify"


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message arriving on any channel, normalised by the channel plugin."""

    channel: str
    sender_email: str | None
    sender_name: str = ""
    subject: str = ""
    body_text: str = ""
    body_html: str | None = None
    message_id: str | None = None
    in_reply_to: list[str] = []
    headers: dict[str, str] = {}


class Screening(msgspec.Struct, frozen=True, kw_only=True):
    """A screening verdict on an inbound message."""

    verdict: Literal["accept", "reject", "record_only"]
    reason: str


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """Something to tell someone: built by the core or a plugin, delivered by notifiers."""

    kind: str
    ticket_id: int | None
    recipients: list[str]
    subject: str
    body: str
    idempotency_key: str
    data: dict[str, Any] = {}


class KbHit(msgspec.Struct, frozen=True, kw_only=True):
    """One knowledge-base search result from one source."""

    source: str
    title: str
    url: str
    snippet: str = ""
    score: float = 0.0


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller: a user with a role (customers are linked to a contact)."""

    id: int
    name: str
    email: str
    role: Role
    contact_id: int | None = None

    @property
    def actor(self) -> Actor:
        """The same person as recorded in history."""
        if self.id == 0:
            # Principal.system() has no user row: recording it as "user 0" made the history
            # point at a user that does not exist.
            return Actor.system(self.name or "system")
        return Actor(kind="user", id=self.id, name=self.name, role=self.role)

    @property
    def is_staff(self) -> bool:
        """Admins and agents."""
        return self.role.is_staff

    @classmethod
    def system(cls) -> Principal:
        """The helpdesk itself (CLI, timers): a staff principal with no user row."""
        return cls(id=0, name="system", email="", role=Role.ADMIN)

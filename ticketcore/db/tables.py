"""Piccolo table definitions. Primary keys are declared explicitly from the start."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ticketcore.domain.models import OPEN_STATUSES


class Organisation(Table, tablename="organisation"):
    """A customer organisation; its VIP flag raises its contacts' priority."""

    id = Serial(primary_key=True)
    name = Varchar(length=200, unique=True)
    domain = Varchar(length=253, null=True, default=None, index=True)
    vip = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())


class Contact(Table, tablename="contact"):
    """A person who writes in."""

    id = Serial(primary_key=True)
    name = Varchar(length=200)
    email = Varchar(length=320, null=True, default=None, unique=True)
    phone = Varchar(length=50, null=True, default=None)
    organisation = ForeignKey(Organisation, null=True, default=None, on_delete=OnDelete.set_null)
    vip = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())


class Team(Table, tablename="team"):
    """A group of agents that tickets are routed to."""

    id = Serial(primary_key=True)
    name = Varchar(length=200, unique=True)
    slug = Varchar(length=100, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())


class User(Table, tablename="app_user"):
    """Someone who signs in: an admin, an agent or a customer (linked to a contact)."""

    id = Serial(primary_key=True)
    email = Varchar(length=320, unique=True)
    name = Varchar(length=200)
    role = Varchar(length=20)
    password_hash = Varchar(length=300, null=True, default=None)
    active = Boolean(default=True)
    #: Whether routing may assign this agent at all (an account switch).
    available = Boolean(default=True)
    #: Presence: online, away or offline; only online agents get routed tickets.
    #: Added by migration 0002 (databases created later get it from 0001's tables).
    availability = Varchar(length=10, default="online")
    #: How many open tickets the agent can hold (``least_loaded``); None: the plugin's default.
    capacity = Integer(null=True, default=None)
    #: Weekly shifts (``domain.models.WorkingHours`` as JSON); None: always on shift.
    #: Added by migration 0003.
    working_hours = JSON(null=True, default=None)
    contact = ForeignKey(Contact, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())


class TeamMember(Table, tablename="team_member"):
    """Membership of an agent in a team, with round-robin state that survives restarts."""

    id = Serial(primary_key=True)
    team = ForeignKey(Team, on_delete=OnDelete.cascade)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    last_assigned_at = Timestamptz(null=True, default=None)
    assigned_count = BigInt(default=0)


class AgentSkill(Table, tablename="agent_skill"):
    """A skill of an agent with a level from 1 (junior) to 5 (expert); added by 0002."""

    id = Serial(primary_key=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    skill = Varchar(length=100)
    level = Integer(default=1)


class ApiToken(Table, tablename="api_token"):
    """A bearer token; only its SHA-256 is stored."""

    id = Serial(primary_key=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=200)
    token_hash = Varchar(length=64, unique=True)
    revoked = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())


class Ticket(Table, tablename="ticket"):
    """A ticket; ``id`` is also its human number."""

    id = BigSerial(primary_key=True)
    key = Varchar(length=36, unique=True)
    subject = Varchar(length=500)
    description = Text(default="")
    status = Varchar(length=20)
    priority = Varchar(length=10)
    category = Varchar(length=100, null=True, default=None)
    channel = Varchar(length=50)
    requester = ForeignKey(Contact, on_delete=OnDelete.restrict)
    team = ForeignKey(Team, null=True, default=None, on_delete=OnDelete.set_null)
    assignee = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    custom_fields = JSON(default="{}")
    tags = JSON(default="[]")
    version = Integer(default=1)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    first_response_at = Timestamptz(null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    # SLA state (migration 0006; databases created later get it from 0001's tables).
    #: The policy (rule) that set the due times; None: no SLA.
    sla_policy = Varchar(length=100, null=True, default=None)
    first_response_due_at = Timestamptz(null=True, default=None)
    next_response_due_at = Timestamptz(null=True, default=None)
    resolution_due_at = Timestamptz(null=True, default=None)
    #: When the clock stopped (waiting on the customer, on hold); None: running.
    sla_paused_at = Timestamptz(null=True, default=None)
    #: Finished pauses: ``[[paused_at, resumed_at], ...]`` (ISO 8601).
    sla_pauses = JSON(default="[]")
    #: Start of the next-response clock: the customer's oldest unanswered message.
    sla_reply_since = Timestamptz(null=True, default=None)
    #: The earliest due time not yet met (indexed: "nearest to breach").
    sla_due_at = Timestamptz(null=True, default=None)
    #: When the next warning or breach fires (indexed: the timer scan).
    sla_next_check_at = Timestamptz(null=True, default=None)
    #: Pending timers ``[[at, target, stage, due], ...]`` and what already fired.
    sla_timers = JSON(default="[]")
    sla_fired = JSON(default="[]")
    #: The SLA worker holding this ticket's due timers, and until when (a lease).
    sla_locked_by = Varchar(length=100, null=True, default=None)
    sla_locked_until = Timestamptz(null=True, default=None)


class TicketTag(Table, tablename="ticket_tag"):
    """One tag on one ticket: the filterable copy of ``Ticket.tags``."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    tag = Varchar(length=100)


class TicketLink(Table, tablename="ticket_link"):
    """A relation from ``ticket`` to ``other``: parent, merged_into or related."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    other = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    kind = Varchar(length=20)
    created_at = Timestamptz(default=TimestamptzNow())


class Entry(Table, tablename="entry"):
    """One conversation item of a ticket."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    kind = Varchar(length=20)
    author_kind = Varchar(length=10)
    author_id = BigInt(null=True, default=None)
    author_name = Varchar(length=200, default="")
    body_text = Text(default="")
    body_html = Text(null=True, default=None)
    message_id = Varchar(length=998, null=True, default=None, index=True)
    created_at = Timestamptz(default=TimestamptzNow())


class Attachment(Table, tablename="attachment"):
    """A stored file of an entry; bytes live in content-addressed storage by SHA-256."""

    id = BigSerial(primary_key=True)
    entry = ForeignKey(Entry, on_delete=OnDelete.cascade)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    filename = Varchar(length=255)
    content_type = Varchar(length=255)
    size = BigInt()
    sha256 = Varchar(length=64)


class TicketEvent(Table, tablename="ticket_event"):
    """An append-only record of one change, written in the transaction of the change."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    kind = Varchar(length=50)
    actor_kind = Varchar(length=10)
    actor_id = BigInt(null=True, default=None)
    actor_name = Varchar(length=200, default="")
    changes = JSON(default="{}")
    data = JSON(default="{}")
    created_at = Timestamptz(default=TimestamptzNow())


class Job(Table, tablename="job"):
    """Durable background work and the outbox: claimed with a lease, retried on failure."""

    id = BigSerial(primary_key=True)
    kind = Varchar(length=100)
    payload = JSON(default="{}")
    idempotency_key = Varchar(length=200, null=True, default=None, unique=True)
    status = Varchar(length=10, default="pending")
    run_at = Timestamptz(default=TimestamptzNow())
    locked_until = Timestamptz(null=True, default=None)
    locked_by = Varchar(length=100, null=True, default=None)
    attempts = Integer(default=0)
    max_attempts = Integer(default=8)
    last_error = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)


class SchemaVersion(Table, tablename="schema_version"):
    """Which migrations have run."""

    id = Serial(primary_key=True)
    version = Integer(unique=True)
    name = Varchar(length=200)
    applied_at = Timestamptz(default=TimestamptzNow())


CORE_TABLES: tuple[type[Table], ...] = (
    SchemaVersion,
    Organisation,
    Contact,
    Team,
    User,
    TeamMember,
    ApiToken,
    Ticket,
    TicketTag,
    TicketLink,
    Entry,
    Attachment,
    TicketEvent,
    Job,
)

#: The SQL condition for a ticket that counts towards its assignee's load (new, open,
#: pending_customer, on_hold: ``domain.models.OPEN_STATUSES``). The load query reads it
#: through the ``(status, id)`` index, so closed tickets are never scanned.
OPEN_TICKET_SQL = "status IN ({})".format(", ".join(f"'{s.value}'" for s in OPEN_STATUSES))


#: Tables created by later migrations (0001 creates only ``CORE_TABLES``).
class Macro(Table, tablename="macro"):
    """A canned response: reply text with placeholders and field changes, applied in one
    step; added by 0004."""

    id = Serial(primary_key=True)
    name = Varchar(length=200, unique=True)
    body = Text(default="")
    internal = Boolean(default=False)
    set_priority = Varchar(length=10, null=True, default=None)
    set_category = Varchar(length=100, null=True, default=None)
    add_tags = JSON(default="[]")
    transition = Varchar(length=30, null=True, default=None)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())


LATER_TABLES: tuple[type[Table], ...] = (AgentSkill, Macro)
ALL_TABLES: tuple[type[Table], ...] = (*CORE_TABLES, *LATER_TABLES)

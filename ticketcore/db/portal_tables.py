"""Tables of the customer portal and the agents' extras (migration 0010).

- ``satisfaction_rating``: one satisfaction rating (CSAT 1 to 5, optional comment) per
  ticket, given by its requester.
- ``sign_in_link``: single-use, expiring e-mail sign-in links for customers; only the
  SHA-256 of the token is stored, never the token itself.
- ``ticket_presence``: which agent looked at or was replying to which ticket, and when (a
  heartbeat from the ticket page); rows older than a minute mean nothing.
- ``saved_filter``: an agent's named ticket filters for the queue.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigSerial,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ticketcore.db.tables import Contact, Ticket, User


class SatisfactionRating(Table, tablename="satisfaction_rating"):
    """The requester's rating of one resolved or closed ticket (unique per ticket)."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    contact = ForeignKey(Contact, null=True, default=None, on_delete=OnDelete.set_null)
    user = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    rating = Integer()
    comment = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class SignInLink(Table, tablename="sign_in_link"):
    """One e-mailed sign-in link: the hash of its token, whose it is, until when."""

    id = BigSerial(primary_key=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    token_hash = Varchar(length=64)
    #: The address asked for, lower-cased (the per-address rate limit counts by it).
    email = Varchar(length=320)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class TicketPresence(Table, tablename="ticket_presence"):
    """An agent's last heartbeat on a ticket page: ``viewing`` or ``replying``."""

    id = BigSerial(primary_key=True)
    ticket = ForeignKey(Ticket, on_delete=OnDelete.cascade)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    mode = Varchar(length=10, default="viewing")
    seen_at = Timestamptz(default=TimestamptzNow())


class SavedFilter(Table, tablename="saved_filter"):
    """One agent's named filter of the ticket list (``TicketFilters`` as JSON)."""

    id = BigSerial(primary_key=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=100)
    filters = JSON(default="{}")
    created_at = Timestamptz(default=TimestamptzNow())


PORTAL_TABLES: tuple[type[Table], ...] = (
    SatisfactionRating,
    SignInLink,
    TicketPresence,
    SavedFilter,
)

#: Indexes of 0010: one rating per ticket, the ratings of a period (reports), one row per
#: token hash, the recent links of an address (rate limit), one presence row per agent and
#: ticket, one filter name per agent.
PORTAL_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_satisfaction_ticket ON satisfaction_rating (ticket)",
    "CREATE INDEX IF NOT EXISTS ix_satisfaction_updated ON satisfaction_rating (updated_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_sign_in_link_hash ON sign_in_link (token_hash)",
    "CREATE INDEX IF NOT EXISTS ix_sign_in_link_email ON sign_in_link (email, created_at)",
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_ticket_presence ON ticket_presence (ticket, "user")',
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_saved_filter ON saved_filter ("user", name)',
)

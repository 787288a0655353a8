"""Tables of notifications kept in the helpdesk itself (migration 0008).

- ``agent_notification``: an agent's in-app inbox (assigned, mentioned, SLA alerts). One row
  per user and idempotency key, so a redelivered event never notifies twice.
- ``organisation_notification_pref``: an organisation's choice of customer updates, one row
  per organisation and kind that differs from the helpdesk's default.
- ``notification_delivery``: the delivery log of the HTTP notifiers (webhook, chat): one row
  per attempt to one endpoint, with the answer, the error and the time it took.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Real,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ticketcore.db.tables import Organisation, User


class AgentNotification(Table, tablename="agent_notification"):
    """One in-app notification for one agent; ``read_at`` is set when they read it."""

    id = BigSerial(primary_key=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    kind = Varchar(length=50)
    # No foreign key: a notification outlives nothing it points at, and a plain integer
    # keeps deleting a ticket independent of agents' inboxes.
    ticket_id = Integer(null=True, default=None)
    title = Varchar(length=500)
    body = Text(default="")
    data = JSON(default="{}")
    idempotency_key = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())
    read_at = Timestamptz(null=True, default=None)


class OrganisationNotificationPref(Table, tablename="organisation_notification_pref"):
    """Whether the requesters of one organisation get one kind of customer update."""

    id = Serial(primary_key=True)
    organisation = ForeignKey(Organisation, on_delete=OnDelete.cascade)
    kind = Varchar(length=50)
    enabled = Boolean(default=True)
    updated_at = Timestamptz(default=TimestamptzNow())


class NotificationDelivery(Table, tablename="notification_delivery"):
    """One attempt of a notifier to deliver one notification to one endpoint."""

    id = BigSerial(primary_key=True)
    notifier = Varchar(length=50)
    #: The notification's idempotency key (the webhook's ``X-TicketCore-Delivery``).
    delivery = Varchar(length=200)
    kind = Varchar(length=50, default="")
    ticket_id = Integer(null=True, default=None)
    #: The endpoint without path or credentials (``https://hooks.example/…``).
    target = Varchar(length=300)
    status = Integer(null=True, default=None)
    error = Text(null=True, default=None)
    duration_ms = Real(default=0.0)
    attempted_at = Timestamptz(default=TimestamptzNow())


NOTIFICATION_TABLES: tuple[type[Table], ...] = (
    AgentNotification,
    OrganisationNotificationPref,
    NotificationDelivery,
)

#: Indexes of 0008: one notification per user and key; the inbox read newest first, and the
#: unread ones (badge count) from a partial index.
NOTIFICATION_INDEXES = (
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_agent_notification_key ON agent_notification ("user", '
    "idempotency_key)",
    'CREATE INDEX IF NOT EXISTS ix_agent_notification_user_id ON agent_notification ("user", id)',
    "CREATE INDEX IF NOT EXISTS ix_agent_notification_unread ON agent_notification "
    '("user", id) WHERE read_at IS NULL',
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_org_notification_pref ON "
    "organisation_notification_pref (organisation, kind)",
    "CREATE INDEX IF NOT EXISTS ix_notification_delivery_key ON notification_delivery "
    "(delivery, id)",
    "CREATE INDEX IF NOT EXISTS ix_notification_delivery_ticket ON notification_delivery "
    "(ticket_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_notification_delivery_failed ON notification_delivery (id) "
    "WHERE error IS NOT NULL",
)

"""The e-mail channel's own tables, created through the ``register_tables`` hook."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class EmailInbound(Table, tablename="email_inbound"):
    """One row per distinct inbound mail (by Message-ID, else content hash) and what became of
    it: the intake log an admin reads, and the record that keeps screened-out mail (which
    leaves no entry behind) from being handled twice."""

    dedupe_key = Varchar(length=998, unique=True)
    message_id = Varchar(length=998, null=True, default=None)
    source = Varchar(length=300, default="")
    recipient = Varchar(length=320, null=True, default=None)
    sender = Varchar(length=320, null=True, default=None)
    subject = Varchar(length=300, default="")
    kind = Varchar(length=30)
    outcome = Varchar(length=20, index=True)
    reason = Varchar(length=500, default="")
    ticket_id = BigInt(null=True, default=None, index=True)
    entry_id = BigInt(null=True, default=None)
    size = Integer(default=0)
    #: Hash of sender, subject, date and body: tells a redelivery from another mail that
    #: reuses a Message-ID.
    fingerprint = Varchar(length=64, null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())


class EmailAutoReply(Table, tablename="email_autoreply"):
    """Automatic replies sent, per address: the rate limit counts these."""

    address = Varchar(length=320, index=True)
    ticket_id = BigInt(null=True, default=None)
    sent_at = Timestamptz(default=TimestamptzNow(), index=True)


EMAIL_TABLES: list[type[Table]] = [EmailInbound, EmailAutoReply]

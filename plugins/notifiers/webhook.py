"""Signed webhooks: POST each notification as JSON to the configured URLs.

The body is the notification encoded as JSON (``kind``, ``ticket_id``, ``recipients``,
``subject``, ``body``, ``idempotency_key``, ``data``). Every request carries:

- ``X-TicketCore-Timestamp``: Unix time in whole seconds when the request was signed;
- ``X-TicketCore-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with ``secret`` (UTF-8),
  of exactly the bytes ``<timestamp> "." <raw body>`` (the timestamp header's ASCII digits, a
  full stop, then the body as sent, byte for byte). Signing the timestamp lets a receiver
  refuse replays of old requests; :func:`verify_signature` does the whole check;
- ``X-TicketCore-Delivery``: the notification's idempotency key, identical on every retry, so
  a receiver can de-duplicate;
- ``X-TicketCore-Kind``: the notification's kind.

A non-2xx answer or a network error fails the notifier, and the job worker retries it with
exponential backoff (other notifiers are not called again). Attempts are logged (logger
``ticketcore.notifiers.webhook``; URLs shown without their path), kept in memory in
``Webhook.poster.attempts`` and recorded in the helpdesk's delivery log, which admins query
with ``GET /api/v1/notification-deliveries?notifier=webhook`` (filters: ``delivery``,
``ticket_id``, ``failed_only``)::

    [plugins]
    notifiers = ["webhook"]

    [plugin.notifiers.webhook]
    urls = ["https://ops.example/hooks/ticketcore"]
    secret = { env = "TICKETCORE_WEBHOOK_SECRET" }
    kinds = ["sla_warning", "sla_breach"]     # optional: every kind when empty

The HTTP client is opened by ``startup`` and closed by ``shutdown``; importing or creating the
plugin does no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

import msgspec

from ticketcore import Notification, hookimpl

from ._http import HttpPoster, PostingNotifier, kind_enabled

if TYPE_CHECKING:
    pass

SIGNATURE_HEADER = "X-TicketCore-Signature"
TIMESTAMP_HEADER = "X-TicketCore-Timestamp"
DELIVERY_HEADER = "X-TicketCore-Delivery"
KIND_HEADER = "X-TicketCore-Kind"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.notifiers.webhook]``."""

    #: Where each notification is POSTed (every URL gets every notification it filters in).
    urls: list[str]
    #: The HMAC key shared with the receivers; read it from the environment.
    secret: str
    #: Seconds to wait for each receiver before the attempt counts as failed.
    timeout_seconds: float = 5
    #: Notification kinds to send; empty sends every kind.
    kinds: list[str] = []


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-TicketCore-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of
    ``<timestamp>.<body>`` keyed with ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a received webhook is authentic and fresh.

    ``body`` is the raw request body, ``timestamp`` and ``signature`` the values of the
    ``X-TicketCore-Timestamp`` and ``X-TicketCore-Signature`` headers (None when missing).
    False when a header is missing or malformed, the timestamp is more than
    ``tolerance_seconds`` away from ``now`` (default: the current time), or the signature does
    not match (compared in constant time). Pure apart from reading the clock.
    """
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Webhook(PostingNotifier):
    """Posts every notification, signed with HMAC-SHA256, to the configured URLs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.poster = HttpPoster("webhook", config.timeout_seconds)

    def request(
        self, notification: Notification, now: float | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the request for ``notification`` (signed at ``now``)."""
        body = msgspec.json.encode(notification)
        timestamp = str(int(time.time() if now is None else now))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "TicketCore-Webhook/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
            DELIVERY_HEADER: notification.idempotency_key,
            KIND_HEADER: notification.kind,
        }
        return body, headers

    @hookimpl
    async def notify(self, notification: Notification) -> None:
        """POST the notification to every URL; raise if any did not answer 2xx."""
        if not kind_enabled(self.config.kinds, notification.kind):
            return
        await self.poster.post_all(
            notification.idempotency_key,
            self.config.urls,
            lambda _url: self.request(notification),
            kind=notification.kind,
            ticket_id=notification.ticket_id,
        )


def create(config: Config) -> Webhook:
    """Entry point factory: check the settings; no I/O until ``startup``."""
    if not config.secret:
        raise ValueError("secret must not be empty")
    if not config.urls:
        raise ValueError("urls must name at least one URL")
    bad = [u for u in config.urls if not u.startswith(("http://", "https://"))]
    if bad:
        raise ValueError(f"urls must be http(s) URLs, got {len(bad)} that are not")
    return Webhook(config)

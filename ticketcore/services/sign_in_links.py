"""Sign-in by e-mail link for customers ("e-mail me a sign-in link").

- :meth:`SignInLinkService.request` makes a random token, stores only its SHA-256 (table
  ``sign_in_link``) with an expiry (:data:`LIFETIME`), and queues a ``sign_in_link``
  notification to the address through the ``notify`` outbox. It behaves the same whether the
  address belongs to a customer or not (nothing is sent for an unknown address, an agent's
  address or an inactive account) so the answer never tells who has an account.
- At most :data:`MAX_PER_WINDOW` links per address per :data:`RATE_WINDOW`; further
  requests are quietly dropped (same answer).
- :meth:`SignInLinkService.redeem` exchanges a token for its customer once: the update that
  marks it used is the check (atomic on both engines), and it also retires the customer's
  other unused links.

Known limit: the notification waits in the outbox (the ``job`` table) with the link in it
until it is delivered and stays there afterwards; the link is single-use and expires after
:data:`LIFETIME`, so what is left is useless by then.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec

from ticketcore.domain.enums import Role
from ticketcore.domain.models import Notification, Principal
from ticketcore.errors import NotAuthenticated
from ticketcore.services.auth import token_hash
from ticketcore.services.directory import normalise_email

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.sign_in_links")

#: How long a link works.
LIFETIME = timedelta(minutes=15)
#: Links per address per window.
MAX_PER_WINDOW = 3
RATE_WINDOW = timedelta(hours=1)
#: Where the link points, under the helpdesk's public URL.
LINK_PATH = "/login/link/"


class SignInLinkService:
    """E-mailed, single-use sign-in links for customers (``app.sign_in_links``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    @property
    def enabled(self) -> bool:
        """Whether links can be sent: a public URL is configured and a notifier listens."""
        return bool(self.app.settings.web.public_url) and bool(
            self.app.hooks.implementers("notify")
        )

    async def request(self, email: str, *, language: str | None = None) -> None:
        """Send a sign-in link to ``email`` if it is an active customer's and the address
        has not had too many links lately. Returns nothing either way (no enumeration);
        ValidationFailed only for something that is not an e-mail address."""
        address = normalise_email(email)
        if not self.enabled:
            return
        now = self.app.clock.now()
        lock = "" if self.db.is_sqlite else " FOR UPDATE"
        async with self.db.transaction():
            users = await self.db.fetch(
                "SELECT id, name, role, active FROM app_user WHERE email = {}" + lock,
                address,
            )
            if not users or users[0]["role"] != Role.CUSTOMER.value or not users[0]["active"]:
                return
            recent = await self.db.fetchval(
                "SELECT COUNT(*) AS n FROM sign_in_link WHERE email = {} AND created_at > {}",
                address,
                now - RATE_WINDOW,
            )
            if int(recent or 0) >= MAX_PER_WINDOW:
                log.info("sign-in link for %s refused: rate limit", address)
                return
            token = secrets.token_urlsafe(32)
            rows = await self.db.fetch(
                'INSERT INTO sign_in_link ("user", token_hash, email, created_at, expires_at) '
                "VALUES ({}, {}, {}, {}, {}) RETURNING id",
                users[0]["id"],
                token_hash(token),
                address,
                now,
                now + LIFETIME,
            )
            base = (self.app.settings.web.public_url or "").rstrip("/")
            data: dict[str, object] = {
                "audience": "customer",
                "sign_in_url": f"{base}{LINK_PATH}{token}",
                "expires_minutes": int(LIFETIME.total_seconds() // 60),
                "name": users[0]["name"],
            }
            if language:
                data["language"] = language
            key = f"sign_in_link:{rows[0]['id']}"
            notification = Notification(
                kind="sign_in_link",
                ticket_id=None,
                recipients=[address],
                subject="",
                body="",
                idempotency_key=key,
                data=data,
            )
            await self.app.jobs.enqueue(
                "notify", {"notification": msgspec.to_builtins(notification)}, key=key
            )
        self.app.jobs.wake()

    async def redeem(self, token: str) -> Principal:
        """The customer whose unused, unexpired link this is; the link is used up.
        NotAuthenticated otherwise (unknown, used, expired, or the account is gone)."""
        refused = NotAuthenticated("this sign-in link is invalid, used or expired")
        if not token or len(token) > 200:
            raise refused
        now = self.app.clock.now()
        async with self.db.transaction():
            rows = await self.db.fetch(
                "UPDATE sign_in_link SET used_at = {} WHERE token_hash = {} "
                'AND used_at IS NULL AND expires_at > {} RETURNING "user"',
                now,
                token_hash(token),
                now,
            )
            if not rows:
                raise refused
            user_id = rows[0]["user"]
            await self.db.fetch(
                'UPDATE sign_in_link SET used_at = {} WHERE "user" = {} AND used_at IS NULL',
                now,
                user_id,
            )
        customer = await self.db.fetch(
            "SELECT id FROM app_user WHERE id = {} AND active = {} AND role = {}",
            user_id,
            True,
            Role.CUSTOMER.value,
        )
        if not customer:  # deactivated, deleted or no longer a customer meanwhile
            raise refused
        return await self.app.auth.user(user_id)

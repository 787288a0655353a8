"""Users, passwords and API tokens. Only hashes are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any

from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.errors import NotAuthenticated, NotFound, ValidationFailed
from ticketcore.services.directory import normalise_email

if TYPE_CHECKING:
    from ticketcore.app import App

TOKEN_PREFIX = "tc_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_TOKEN_CACHE_SECONDS = 5.0  # a revoked token stops working within this delay


def hash_password(password: str) -> str:
    """A salted scrypt hash in a self-describing format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches the stored hash (constant-time comparison)."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_b64, digest_b64 = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Creates users and tokens and authenticates callers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create_user(self, cmd: NewUser) -> Principal:
        """Add a user; a customer is linked to the contact with the same e-mail."""
        email = normalise_email(cmd.email)
        if cmd.password is not None and len(cmd.password) < 8:
            raise ValidationFailed("a password needs at least 8 characters", field="password")
        now = self.app.clock.now()
        contact_id = None
        if cmd.role is Role.CUSTOMER:
            contact = await self.app.directory.ensure_contact(email, cmd.name, None, now)
            contact_id = contact.id
        async with self.db.transaction():
            if await self.db.fetch("SELECT id FROM app_user WHERE email = {}", email):
                raise ValidationFailed(f"a user with e-mail {email} exists", field="email")
            for team_id in cmd.team_ids:
                if not await self.db.fetch("SELECT id FROM team WHERE id = {}", team_id):
                    raise ValidationFailed(f"team {team_id} does not exist", field="team_ids")
            rows = await self.db.fetch(
                "INSERT INTO app_user (email, name, role, password_hash, active, available, "
                "contact, created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}) RETURNING id",
                email,
                cmd.name,
                cmd.role.value,
                hash_password(cmd.password) if cmd.password else None,
                True,
                True,
                contact_id,
                now,
            )
            user_id = int(rows[0]["id"])
            for team_id in cmd.team_ids:
                await self.db.fetch(
                    'INSERT INTO team_member (team, "user", assigned_count) VALUES ({}, {}, 0)',
                    team_id,
                    user_id,
                )
        return Principal(
            id=user_id, name=cmd.name, email=email, role=cmd.role, contact_id=contact_id
        )

    async def user(self, user_id: int) -> Principal:
        """A user by id."""
        rows = await self.db.fetch("SELECT * FROM app_user WHERE id = {}", user_id)
        if not rows:
            raise NotFound(f"user {user_id} not found", field="user_id")
        return _principal(rows[0])

    async def user_by_email(self, email: str) -> Principal:
        """A user by e-mail."""
        rows = await self.db.fetch("SELECT * FROM app_user WHERE email = {}", email.strip().lower())
        if not rows:
            raise NotFound(f"no user with e-mail {email}", field="email")
        return _principal(rows[0])

    async def set_active(self, user_id: int, active: bool) -> None:
        """Deactivate (signed out, tokens refused, no routed tickets) or reactivate a user."""
        await self.user(user_id)
        async with self.db.transaction():
            await self.db.fetch("UPDATE app_user SET active = {} WHERE id = {}", active, user_id)
        self._cache.clear()

    async def create_token(self, user_id: int, name: str) -> str:
        """Issue a new bearer token for a user; the token itself is shown only now."""
        await self.user(user_id)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction():
            await self.db.fetch(
                'INSERT INTO api_token ("user", name, token_hash, revoked, created_at) '
                "VALUES ({}, {}, {}, {}, {})",
                user_id,
                name,
                token_hash(token),
                False,
                self.app.clock.now(),
            )
        return token

    async def revoke_token(self, token: str) -> None:
        """Stop a token from working."""
        async with self.db.transaction():
            await self.db.fetch(
                "UPDATE api_token SET revoked = {} WHERE token_hash = {}", True, token_hash(token)
            )
        self._cache.pop(token_hash(token), None)

    async def authenticate_token(self, token: str) -> Principal:
        """The active user a bearer token belongs to, or NotAuthenticated."""
        digest = token_hash(token)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        rows = await self.db.fetch(
            'SELECT u.* FROM api_token t JOIN app_user u ON u.id = t."user" '
            "WHERE t.token_hash = {} AND t.revoked = {} AND u.active = {}",
            digest,
            False,
            True,
        )
        if not rows:
            raise NotAuthenticated("invalid or revoked token")
        principal = _principal(rows[0])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + _TOKEN_CACHE_SECONDS, principal)
        return principal

    async def authenticate_password(self, email: str, password: str) -> Principal:
        """The active user with this e-mail and password, or NotAuthenticated."""
        rows = await self.db.fetch(
            "SELECT * FROM app_user WHERE email = {} AND active = {}", email.strip().lower(), True
        )
        if not rows or not verify_password(password, rows[0]["password_hash"]):
            raise NotAuthenticated("wrong e-mail or password")
        return _principal(rows[0])


def _principal(row: dict[str, Any]) -> Principal:
    # Rows are dict[str, Any] (as Database.fetch returns them): typed as dict[str, object]
    # they needed misplaced type-ignores that mypy rejected.
    return Principal(
        id=int(row["id"]),
        name=str(row["name"]),
        email=str(row["email"]),
        role=Role(row["role"]),
        contact_id=row["contact"],
    )

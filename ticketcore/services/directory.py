"""Contacts, organisations and teams."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ticketcore.domain.models import Contact
from ticketcore.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from ticketcore.app import App

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_CONTACT_SELECT = (
    "SELECT c.*, o.name AS o_name, o.vip AS o_vip FROM contact c "
    "LEFT JOIN organisation o ON o.id = c.organisation"
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def normalise_email(email: str, field: str = "email") -> str:
    """Trimmed, lower-cased e-mail; a clear error when it is not one."""
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise ValidationFailed(f"{email!r} is not an e-mail address", field=field)
    return value


class DirectoryService:
    """People and groups the helpdesk knows."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def contact(self, contact_id: int, field: str = "contact_id") -> Contact:
        """A contact by id."""
        rows = await self.db.fetch(
            f"{_CONTACT_SELECT} WHERE c.id = {{}}",
            contact_id,
        )
        if not rows:
            raise NotFound(f"contact {contact_id} not found", field=field)
        return _contact(rows[0])

    async def find_contact(self, email: str, field: str = "email") -> Contact | None:
        """The contact with this e-mail, if there is one (read-only)."""
        return await self._by_email(normalise_email(email, field))

    async def ensure_contact(
        self, email: str, name: str | None, phone: str | None, now: datetime
    ) -> Contact:
        """The contact with this e-mail, created if new (safe under concurrency).

        Joins the caller's transaction when there is one.
        """
        address = normalise_email(email, "requester.email")
        found = await self._by_email(address)
        if found:
            return found
        display = (name or "").strip() or address.split("@", 1)[0]
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO contact (name, email, phone, vip, created_at) "
                "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (email) DO NOTHING",
                display[:200],
                address,
                phone,
                False,
                now,
            )
            created = await self._by_email(address)
        assert created is not None
        return created

    async def contacts_by_email(self, emails: list[str]) -> dict[str, Contact]:
        """Known contacts among these (normalised) addresses, by address."""
        if not emails:
            return {}
        marks = ", ".join(["{}"] * len(emails))
        rows = await self.db.fetch(
            f"{_CONTACT_SELECT} WHERE c.email IN ({marks})",
            *emails,
        )
        return {row["email"]: _contact(row) for row in rows}

    async def insert_contacts(self, contacts: list[Contact], now: datetime) -> None:
        """Create contacts for new addresses (an address created meanwhile is kept)."""
        unique = {c.email: c for c in contacts if c.email}
        values = ", ".join(["({}, {}, {}, {}, {})"] * len(unique))
        args = [v for c in unique.values() for v in (c.name[:200], c.email, c.phone, False, now)]
        async with self.db.transaction():
            await self.db.fetch(
                "INSERT INTO contact (name, email, phone, vip, created_at) "
                f"VALUES {values} ON CONFLICT (email) DO NOTHING",
                *args,
            )

    async def _by_email(self, address: str) -> Contact | None:
        rows = await self.db.fetch(
            f"{_CONTACT_SELECT} WHERE c.email = {{}}",
            address,
        )
        return _contact(rows[0]) if rows else None

    async def create_organisation(
        self, name: str, domain: str | None = None, vip: bool = False
    ) -> int:
        """Add an organisation; return its id."""
        async with self.db.transaction():
            rows = await self.db.fetch(
                "INSERT INTO organisation (name, domain, vip, created_at) VALUES ({}, {}, {}, {}) "
                "RETURNING id",
                name,
                domain,
                vip,
                self.app.clock.now(),
            )
        return int(rows[0]["id"])

    async def create_contact(
        self,
        name: str,
        email: str | None,
        *,
        phone: str | None = None,
        organisation_id: int | None = None,
        vip: bool = False,
    ) -> int:
        """Add a contact; return its id."""
        address = normalise_email(email) if email else None
        async with self.db.transaction():
            rows = await self.db.fetch(
                "INSERT INTO contact (name, email, phone, organisation, vip, created_at) "
                "VALUES ({}, {}, {}, {}, {}, {}) RETURNING id",
                name,
                address,
                phone,
                organisation_id,
                vip,
                self.app.clock.now(),
            )
        return int(rows[0]["id"])

    async def create_team(self, name: str, slug: str) -> int:
        """Add a team; return its id."""
        if not _SLUG.match(slug):
            raise ValidationFailed("a slug is lower-case letters, digits and dashes", field="slug")
        async with self.db.transaction():
            if await self.db.fetch("SELECT id FROM team WHERE slug = {} OR name = {}", slug, name):
                raise ValidationFailed(f"a team named {name!r} or {slug!r} exists", field="slug")
            rows = await self.db.fetch(
                "INSERT INTO team (name, slug, created_at) VALUES ({}, {}, {}) RETURNING id",
                name,
                slug,
                self.app.clock.now(),
            )
        return int(rows[0]["id"])

    async def add_member(self, team_id: int, user_id: int) -> None:
        """Put an agent in a team (idempotent)."""
        async with self.db.transaction():
            await self.db.fetch(
                'INSERT INTO team_member (team, "user", assigned_count) VALUES ({}, {}, 0) '
                'ON CONFLICT (team, "user") DO NOTHING',
                team_id,
                user_id,
            )

    async def teams(self) -> list[dict[str, Any]]:
        """Every team with its member ids."""
        teams = await self.db.fetch("SELECT id, name, slug FROM team ORDER BY name")
        members = await self.db.fetch('SELECT team, "user" FROM team_member ORDER BY "user"')
        by_team: dict[int, list[int]] = {}
        for m in members:
            by_team.setdefault(m["team"], []).append(m["user"])
        return [{**t, "member_ids": by_team.get(t["id"], [])} for t in teams]


def _contact(row: dict[str, Any]) -> Contact:
    return Contact(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        organisation_id=row["organisation"],
        organisation=row["o_name"],
        vip=bool(row["vip"]) or bool(row["o_vip"]),
    )

"""Contacts, organisations and teams."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.db.tables import OPEN_TICKET_SQL
from ticketcore.domain.commands import RoutingProfilePatch
from ticketcore.domain.models import (
    AVAILABILITY_STATES,
    Availability,
    Contact,
    Principal,
    RoutingProfile,
    WorkingHours,
)
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.routing import is_on_shift, working_hours_of
from ticketcore.services.rows import dump_json

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

    async def rename_team(self, team_id: int, name: str) -> None:
        """Give a team a new name (unique among teams)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("a team name has 1 to 200 characters", field="name")
        async with self.db.transaction():
            await self._ensure_team(team_id)
            taken = await self.db.fetch(
                "SELECT id FROM team WHERE name = {} AND id <> {}", name, team_id
            )
            if taken:
                raise ValidationFailed(f"a team named {name!r} exists", field="name")
            await self.db.fetch("UPDATE team SET name = {} WHERE id = {}", name, team_id)

    async def add_agent_to_team(self, team_id: int, user_id: int) -> None:
        """Put an existing agent or admin in an existing team (checked; idempotent)."""
        async with self.db.transaction():
            await self._ensure_team(team_id)
            await self._ensure_staff_user(user_id)
            await self.add_member(team_id, user_id)

    async def remove_member(self, team_id: int, user_id: int) -> None:
        """Take an agent out of a team (idempotent)."""
        async with self.db.transaction():
            await self.db.fetch(
                'DELETE FROM team_member WHERE team = {} AND "user" = {}', team_id, user_id
            )

    async def set_teams(self, user_id: int, team_ids: list[int]) -> None:
        """Make an agent a member of exactly these teams (unknown teams are refused)."""
        wanted = set(team_ids)
        async with self.db.transaction():
            await self._ensure_staff_user(user_id)
            for team_id in sorted(wanted):
                await self._ensure_team(team_id, field="team_ids")
            rows = await self.db.fetch('SELECT team FROM team_member WHERE "user" = {}', user_id)
            current = {int(r["team"]) for r in rows}
            for team_id in sorted(current - wanted):
                await self.remove_member(team_id, user_id)
            for team_id in sorted(wanted - current):
                await self.add_member(team_id, user_id)

    async def _ensure_team(self, team_id: int, field: str = "team_id") -> None:
        if not await self.db.fetch("SELECT id FROM team WHERE id = {}", team_id):
            raise ValidationFailed(f"team {team_id} does not exist", field=field)

    async def _ensure_staff_user(self, user_id: int) -> None:
        rows = await self.db.fetch(
            "SELECT id FROM app_user WHERE id = {} AND role IN ('agent', 'admin')", user_id
        )
        if not rows:
            raise NotFound(f"agent {user_id} not found", field="user_id")

    async def set_availability(self, user_id: int, availability: str) -> None:
        """Set an agent's presence: ``online``, ``away`` or ``offline`` (only online agents
        get routed tickets)."""
        if availability not in AVAILABILITY_STATES:
            raise ValidationFailed(
                f"availability must be one of {', '.join(AVAILABILITY_STATES)}",
                field="availability",
            )
        async with self.db.transaction():
            await self._ensure_staff_user(user_id)
            await self.db.fetch(
                "UPDATE app_user SET availability = {} WHERE id = {}", availability, user_id
            )

    async def set_capacity(self, user_id: int, capacity: int | None) -> None:
        """Set how many open tickets an agent can hold (None: the routing plugin's default)."""
        if capacity is not None and capacity < 0:
            raise ValidationFailed("capacity cannot be negative", field="capacity")
        async with self.db.transaction():
            await self._ensure_staff_user(user_id)
            await self.db.fetch(
                "UPDATE app_user SET capacity = {} WHERE id = {}", capacity, user_id
            )

    async def set_working_hours(self, user_id: int, hours: WorkingHours | None) -> None:
        """Set an agent's weekly shifts (None: always on shift); outside them the agent gets
        no routed tickets."""
        if hours is not None:
            problems = hours.problems()
            if problems:
                raise ValidationFailed("; ".join(problems), field="working_hours")
        async with self.db.transaction():
            await self._ensure_staff_user(user_id)
            await self.db.fetch(
                "UPDATE app_user SET working_hours = {} WHERE id = {}",
                None if hours is None else dump_json(hours),
                user_id,
            )

    async def set_skills(self, user_id: int, skills: dict[str, int]) -> None:
        """Replace an agent's skills: ``{"postgres": 4}``; names are case-insensitive, levels
        go from 1 (junior) to 5 (expert)."""
        cleaned: dict[str, int] = {}
        for name, level in skills.items():
            key = name.strip().lower()
            if not key or len(key) > 100:
                raise ValidationFailed("a skill name has 1 to 100 characters", field="skills")
            if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
                raise ValidationFailed(
                    f"the level of skill {key!r} must be an integer from 1 to 5",
                    field=f"skills.{key}",
                )
            cleaned[key] = level
        async with self.db.transaction():
            await self._ensure_staff_user(user_id)
            await self.db.fetch('DELETE FROM agent_skill WHERE "user" = {}', user_id)
            if cleaned:
                values = ", ".join(["({}, {}, {})"] * len(cleaned))
                await self.db.fetch(
                    f'INSERT INTO agent_skill ("user", skill, level) VALUES {values}',
                    *[v for key, level in cleaned.items() for v in (user_id, key, level)],
                )

    async def skills(self, user_id: int) -> dict[str, int]:
        """An agent's skills and levels."""
        rows = await self.db.fetch(
            'SELECT skill, level FROM agent_skill WHERE "user" = {} ORDER BY skill', user_id
        )
        return {row["skill"]: int(row["level"]) for row in rows}

    async def routing_profile(self, user_id: int) -> RoutingProfile:
        """An agent's presence, capacity, skills and current number of open tickets."""
        rows = await self.db.fetch(
            "SELECT id, available, availability, capacity, working_hours FROM app_user "
            "WHERE id = {} AND role IN ('agent', 'admin')",
            user_id,
        )
        if not rows:
            raise NotFound(f"agent {user_id} not found", field="user_id")
        row = rows[0]
        count = await self.db.fetchval(
            f"SELECT COUNT(*) AS n FROM ticket WHERE assignee = {{}} AND {OPEN_TICKET_SQL}",
            user_id,
        )
        availability: Availability = (
            row["availability"] if row["availability"] in AVAILABILITY_STATES else "offline"
        )
        return RoutingProfile(
            user_id=user_id,
            available=bool(row["available"]),
            availability=availability,
            capacity=row["capacity"],
            skills=await self.skills(user_id),
            open_tickets=int(count or 0),
            working_hours=working_hours_of(row["working_hours"]),
            on_shift=is_on_shift(row["working_hours"], self.app.clock.now()),
        )

    async def update_routing_profile(
        self, actor: Principal, user_id: int, patch: RoutingProfilePatch
    ) -> RoutingProfile:
        """Apply a patch, all or nothing: agents may set their own availability and working
        hours, admins anything."""
        permissions.ensure_staff(actor, "changing routing settings")
        if (
            actor.id != user_id
            or patch.capacity is not msgspec.UNSET
            or patch.skills is not msgspec.UNSET
        ):
            permissions.ensure_admin(actor, "changing another agent's capacity or skills")
        async with self.db.transaction():  # all or nothing: the setters join it
            if patch.availability is not msgspec.UNSET:
                await self.set_availability(user_id, patch.availability)
            if patch.working_hours is not msgspec.UNSET:
                await self.set_working_hours(user_id, patch.working_hours)
            if patch.capacity is not msgspec.UNSET:
                await self.set_capacity(user_id, patch.capacity)
            if patch.skills is not msgspec.UNSET:
                await self.set_skills(user_id, patch.skills)
        return await self.routing_profile(user_id)

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

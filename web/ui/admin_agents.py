"""``/admin/agents``: create agents and admins, deactivate and reactivate them, and edit their
teams, skills with levels, capacity and presence (admins only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath

from ticketcore.domain.commands import NewUser, RoutingProfilePatch
from ticketcore.domain.enums import Role
from ticketcore.domain.models import AVAILABILITY_STATES
from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import optional_int, text

ROLES = ("agent", "admin")
PROFILE_FIELDS = ("team_ids", "skills", "capacity", "availability")


def parse_skills(raw: str) -> dict[str, int]:
    """``"postgres: 4, billing: 2"`` as ``{"postgres": 4, "billing": 2}``."""
    skills: dict[str, int] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, level = part.rpartition(":")
        if not sep or not name.strip() or not level.strip().isdigit():
            raise ValidationFailed(f"write each skill as name: level, not {part!r}", field="skills")
        skills[name.strip()] = int(level.strip())
    return skills


def team_ids(form: FormMultiDict) -> list[int]:
    """The ticked team checkboxes."""
    ids: list[int] = []
    for value in form.getall("team_ids", []):
        if not isinstance(value, str) or not value.strip().isdigit():
            raise ValidationFailed(f"unknown team {value!r}", field="team_ids")
        ids.append(int(value))
    return ids


def _field(exc: TicketCoreError, fields: tuple[str, ...]) -> str:
    field = (exc.field or "").split(".", 1)[0]
    return field if field in fields else ""


async def agents_page(
    viewer: Viewer,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response[Any]:
    """The list of agents and the new-agent form (``errors`` by field, shown in place)."""
    helpdesk = viewer.helpdesk
    rows = await helpdesk.db.fetch(
        "SELECT id, name, email, role, active FROM app_user "
        "WHERE role IN ('agent', 'admin') ORDER BY name"
    )
    agents = [
        {"user": r, "profile": await helpdesk.directory.routing_profile(int(r["id"]))} for r in rows
    ]
    return viewer.page(
        "admin/agents.html",
        status_code=status,
        agents=agents,
        teams=await helpdesk.directory.teams(),
        roles=ROLES,
        errors=errors or {},
        values=values or {"role": "agent", "team_ids": []},
    )


async def agent_form(
    viewer: Viewer,
    user_id: int,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response[Any]:
    """One agent's teams, skills, capacity and presence."""
    helpdesk = viewer.helpdesk
    user = await helpdesk.auth.user(user_id)
    profile = await helpdesk.directory.routing_profile(user_id)
    teams = await helpdesk.directory.teams()
    if values is None:
        values = {
            "team_ids": [t["id"] for t in teams if user_id in t["member_ids"]],
            "skills": ", ".join(f"{k}: {v}" for k, v in profile.skills.items()),
            "capacity": "" if profile.capacity is None else str(profile.capacity),
            "availability": profile.availability,
        }
    return viewer.page(
        "admin/agent_form.html",
        status_code=status,
        agent=user,
        teams=teams,
        availabilities=AVAILABILITY_STATES,
        errors=errors or {},
        values=values,
    )


class AdminAgentController(Controller):
    """Admins only."""

    path = "/admin/agents"
    include_in_schema = False

    @get("/")
    async def agents(self, viewer: ViewerDep) -> Response[Any]:
        """Agents and admins with presence, capacity, skills and load."""
        viewer.require_admin()
        return await agents_page(viewer)

    @post("/")
    async def create_agent(self, viewer: ViewerDep) -> Response[Any]:
        """Add an agent or admin (a password is optional: without one, no password sign-in)."""
        viewer.require_admin()
        form = await viewer.form()
        password = form.get("password")
        values: dict[str, Any] = {
            "name": text(form, "name"),
            "email": text(form, "email"),
            "role": text(form, "role"),
            "team_ids": [],
        }
        try:
            values["team_ids"] = team_ids(form)
            if not values["name"]:
                raise ValidationFailed("give the agent's name", field="name")
            if values["role"] not in ROLES:
                raise ValidationFailed(f"unknown role {values['role']!r}", field="role")
            cmd = NewUser(
                email=values["email"],
                name=values["name"],
                role=Role(values["role"]),
                password=password if isinstance(password, str) and password else None,
                team_ids=values["team_ids"],
            )
            await viewer.helpdesk.auth.create_user(cmd)
        except TicketCoreError as exc:
            fields = ("name", "email", "role", "password", "team_ids")
            return await agents_page(viewer, {_field(exc, fields): exc.message}, values, status=422)
        return viewer.redirect("/admin/agents", done="agent_saved")

    @get("/{user_id:int}")
    async def edit_agent(self, user_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One agent's routing form."""
        viewer.require_admin()
        return await agent_form(viewer, user_id)

    @post("/{user_id:int}")
    async def update_agent(self, user_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Replace teams, skills, capacity and presence, all or nothing."""
        principal = viewer.require_admin()
        form = await viewer.form()
        helpdesk = viewer.helpdesk
        values: dict[str, Any] = {
            "team_ids": [],
            "skills": text(form, "skills"),
            "capacity": text(form, "capacity"),
            "availability": text(form, "availability"),
        }
        try:
            values["team_ids"] = team_ids(form)
            availability = values["availability"]
            if availability not in AVAILABILITY_STATES:
                raise ValidationFailed(f"unknown presence {availability!r}", field="availability")
            patch = RoutingProfilePatch(
                availability=availability,
                capacity=optional_int(form, "capacity"),
                skills=parse_skills(values["skills"]),
            )
            async with helpdesk.db.transaction():
                await helpdesk.directory.set_teams(user_id, values["team_ids"])
                await helpdesk.directory.update_routing_profile(principal, user_id, patch)
        except TicketCoreError as exc:
            errors = {_field(exc, PROFILE_FIELDS): exc.message}
            return await agent_form(viewer, user_id, errors, values, status=422)
        return viewer.redirect("/admin/agents", done="agent_saved")

    @post("/{user_id:int}/active")
    async def set_active(self, user_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Deactivate (``active=``) or reactivate (``active=1``); not oneself."""
        principal = viewer.require_admin()
        form = await viewer.form()
        active = text(form, "active") == "1"
        if user_id == principal.id and not active:
            return viewer.redirect("/admin/agents", error="you cannot deactivate yourself")
        await viewer.helpdesk.directory.routing_profile(user_id)  # staff only, else 404
        await viewer.helpdesk.auth.set_active(user_id, active)
        return viewer.redirect("/admin/agents", done="agent_saved")

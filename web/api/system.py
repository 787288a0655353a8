"""Health, plugins, and the directory endpoints."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody

from ticketcore.domain.commands import NewUser, RoutingProfilePatch
from ticketcore.domain.models import Principal, RoutingProfile
from ticketcore.services import permissions
from ticketcore.services.categories import CategoryInfo, CategoryService
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


class PluginInfo(msgspec.Struct, kw_only=True):
    """An enabled plugin as the API shows it (secrets redacted)."""

    kind: str
    name: str
    distribution: str
    version: str
    module: str
    description: str
    hooks: list[str]
    config: dict[str, Any]


class NewTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Create a team."""

    name: str
    slug: str


@get("/healthz", tags=["system"])
async def healthz(helpdesk: HelpdeskDep) -> dict[str, Any]:
    """Liveness and readiness: answers only when the database answers."""
    await helpdesk.db.fetch("SELECT 1 AS ok")
    return {"status": "ok", "database": helpdesk.db.dialect}


class SystemController(Controller):
    """``/api/v1``: plugins, teams, users."""

    path = "/api/v1"
    tags = ["system"]

    @get("/plugins")
    async def list_plugins(
        self, helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[PluginInfo]:
        """Enabled plugins in call order with version, hooks and validated settings."""
        permissions.ensure_staff(principal, "listing plugins")
        return [
            PluginInfo(
                kind=p.kind,
                name=p.name,
                distribution=p.distribution,
                version=p.version,
                module=p.module,
                description=p.description,
                hooks=p.hooks,
                config=p.raw_config,
            )
            for p in helpdesk.plugins
        ]

    @get("/teams")
    async def list_teams(
        self, helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[dict[str, Any]]:
        """Teams with their members."""
        permissions.ensure_staff(principal, "listing teams")
        return await helpdesk.directory.teams()

    @post("/teams")
    async def create_team(
        self, data: JSONBody[NewTeam], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        """Add a team (admins)."""
        permissions.ensure_admin(principal, "creating teams")
        team_id = await helpdesk.directory.create_team(data.name, data.slug)
        return {"id": team_id, "name": data.name, "slug": data.slug}

    @get("/categories")
    async def list_categories(
        self, helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[CategoryInfo]:
        """The active ticket categories in order (anyone signed in); empty when none is
        defined (the ``category`` of a ticket is then free text)."""
        return await CategoryService(helpdesk).list(active_only=True)

    @post("/users")
    async def create_user(
        self, data: JSONBody[NewUser], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Principal:
        """Add an admin, agent or customer (admins)."""
        permissions.ensure_admin(principal, "creating users")
        return await helpdesk.auth.create_user(data)

    @get("/users/{user_id:int}/routing")
    async def routing_profile(
        self, user_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> RoutingProfile:
        """An agent's availability, capacity, skills and open tickets (staff)."""
        permissions.ensure_staff(principal, "reading routing settings")
        return await helpdesk.directory.routing_profile(user_id)

    @patch("/users/{user_id:int}/routing")
    async def update_routing_profile(
        self,
        user_id: FromPath[int],
        data: JSONBody[RoutingProfilePatch],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> RoutingProfile:
        """Change availability (agents: their own; admins: anyone's), capacity or skills
        (admins); e.g. ``{"availability": "away"}``."""
        return await helpdesk.directory.update_routing_profile(principal, user_id, data)

    @get("/me")
    async def me(self, principal: PrincipalDep) -> Principal:
        """Who the token belongs to."""
        return principal

"""``/admin/teams``: create and rename teams, add and remove their members (admins only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath

from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import optional_int, text


async def teams_page(
    viewer: Viewer,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    """The teams page; ``errors`` are keyed ``name``/``slug`` (the new-team form) or
    ``team-<id>`` (that team's forms)."""
    helpdesk = viewer.helpdesk
    staff = await helpdesk.db.fetch(
        "SELECT id, name, active FROM app_user WHERE role IN ('agent', 'admin') ORDER BY name"
    )
    names = {int(u["id"]): str(u["name"]) for u in staff}
    teams = await helpdesk.directory.teams()
    shown = {"name", "slug", *(f"team-{t['id']}" for t in teams)}
    errors = {(k if k in shown else ""): v for k, v in (errors or {}).items()}
    return viewer.page(
        "admin/teams.html",
        status_code=status,
        teams=teams,
        names=names,
        staff=[u for u in staff if u["active"]],
        errors=errors,
        values=values or {},
    )


class AdminTeamController(Controller):
    """Admins only; every action answers with the page (errors in place) or a redirect."""

    path = "/admin/teams"
    include_in_schema = False

    @get("/")
    async def teams(self, viewer: ViewerDep) -> Response[Any]:
        """Teams, their members and the forms to change them."""
        viewer.require_admin()
        return await teams_page(viewer)

    @post("/")
    async def create_team(self, viewer: ViewerDep) -> Response[Any]:
        """Add a team from a name and a slug."""
        viewer.require_admin()
        form = await viewer.form()
        values = {"name": text(form, "name"), "slug": text(form, "slug")}
        try:
            if not values["name"]:
                raise ValidationFailed("name the team", field="name")
            await viewer.helpdesk.directory.create_team(values["name"], values["slug"])
        except TicketCoreError as exc:
            field = exc.field if exc.field in ("name", "slug") else "slug"
            return await teams_page(viewer, {field: exc.message}, values, status=422)
        return viewer.redirect("/admin/teams", done="team_saved")

    @post("/{team_id:int}/name")
    async def rename_team(self, team_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Rename a team."""
        viewer.require_admin()
        form = await viewer.form()
        try:
            await viewer.helpdesk.directory.rename_team(team_id, text(form, "name"))
        except TicketCoreError as exc:
            return await teams_page(viewer, {f"team-{team_id}": exc.message}, status=422)
        return viewer.redirect("/admin/teams", done="team_saved")

    @post("/{team_id:int}/members")
    async def add_member(self, team_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Put an agent in the team."""
        viewer.require_admin()
        form = await viewer.form()
        try:
            user_id = optional_int(form, "user_id")
            if user_id is None:
                raise ValidationFailed("choose an agent", field="user_id")
            await viewer.helpdesk.directory.add_agent_to_team(team_id, user_id)
        except TicketCoreError as exc:
            return await teams_page(viewer, {f"team-{team_id}": exc.message}, status=422)
        return viewer.redirect("/admin/teams", done="team_saved")

    @post("/{team_id:int}/members/{user_id:int}/remove")
    async def remove_member(
        self, team_id: FromPath[int], user_id: FromPath[int], viewer: ViewerDep
    ) -> Response[Any]:
        """Take an agent out of the team."""
        viewer.require_admin()
        await viewer.form()
        await viewer.helpdesk.directory.remove_member(team_id, user_id)
        return viewer.redirect("/admin/teams", done="team_saved")

"""Admin pages: the start page and API tokens (plugins, automation rules, canned responses,
teams, agents and categories have their own ``admin_*`` modules)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery

from ticketcore.errors import TicketCoreError, ValidationFailed
from ticketcore.web.ui.context import ViewerDep
from ticketcore.web.ui.forms import optional_int, text


class AdminController(Controller):
    """``/admin``: admins only."""

    path = "/admin"
    include_in_schema = False

    @get("/")
    async def index(self, viewer: ViewerDep) -> Response[Any]:
        """The plugins page is the admin's start page."""
        viewer.require_admin()
        return viewer.redirect("/admin/plugins")

    @get("/tokens")
    async def tokens(self, viewer: ViewerDep, created: FromQuery[str] = "") -> Response[Any]:
        """API tokens (never their value, except once right after creation)."""
        viewer.require_admin()
        helpdesk = viewer.helpdesk
        rows = await helpdesk.db.fetch(
            "SELECT t.id, t.name, t.revoked, t.created_at, u.name AS user_name, u.email "
            'FROM api_token t JOIN app_user u ON u.id = t."user" ORDER BY t.id DESC LIMIT 200'
        )
        users = await helpdesk.db.fetch(
            "SELECT id, name, email FROM app_user WHERE active = {} ORDER BY name", True
        )
        new_token = viewer.request.cookies.get("tc_new_token") if created else None
        response = viewer.page("admin/tokens.html", tokens=rows, users=users, new_token=new_token)
        if new_token:
            response.delete_cookie("tc_new_token", path="/admin/tokens")
        return response

    @post("/tokens")
    async def create_token(self, viewer: ViewerDep) -> Response[Any]:
        """Issue a token; it is shown once, on the next page only."""
        viewer.require_admin()
        form = await viewer.form()
        try:
            user_id = optional_int(form, "user_id")
            name = text(form, "name")
            if user_id is None or not name:
                raise ValidationFailed("choose a user and name the token", field="name")
            token = await viewer.helpdesk.auth.create_token(user_id, name)
        except TicketCoreError as exc:
            return viewer.redirect("/admin/tokens", error=exc.message)
        response = viewer.redirect("/admin/tokens?created=1")
        # The token travels to the next page in a short-lived, path-bound, HttpOnly cookie
        # rather than in the URL (which would land in logs and history).
        response.set_cookie(
            "tc_new_token",
            token,
            path="/admin/tokens",
            max_age=60,
            httponly=True,
            secure=viewer.ui.secure_cookies,
            samesite="strict",
        )
        return response

    @post("/tokens/{token_id:int}/revoke")
    async def revoke_token(self, token_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Revoke a token (it stops working within seconds: the auth cache's delay)."""
        viewer.require_admin()
        await viewer.form()
        helpdesk = viewer.helpdesk
        async with helpdesk.db.transaction():
            await helpdesk.db.fetch(
                "UPDATE api_token SET revoked = {} WHERE id = {}", True, token_id
            )
        return viewer.redirect("/admin/tokens", done="token_revoked")

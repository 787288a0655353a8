"""Sign-in, sign-out, the language switch and the home redirect."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromQuery

from ticketcore.errors import NotAuthenticated
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import text
from ticketcore.web.ui.i18n import CATALOGUES
from ticketcore.web.ui.session import Session


def home_of(viewer: Viewer) -> str:
    """Where a user lands after sign-in."""
    principal = viewer.principal
    if principal is None:
        return "/login"
    return "/agent" if principal.is_staff else "/portal"


def safe_next(value: str) -> str | None:
    """A local path to return to after sign-in (never another site)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


class SignInController(Controller):
    """``/login``, ``/logout``, ``/language``, ``/``"""

    include_in_schema = False

    @get("/")
    async def home(self, viewer: ViewerDep) -> Response[Any]:
        """Send each user to their pages."""
        return viewer.redirect(home_of(viewer))

    @get("/login")
    async def login_form(self, viewer: ViewerDep, next: FromQuery[str] = "") -> Response[Any]:
        """The sign-in form (already signed in: go home)."""
        if viewer.principal is not None:
            return viewer.redirect(home_of(viewer))
        return viewer.page(
            "login.html",
            next=safe_next(next) or "",
            error=None,
            link_sign_in=viewer.helpdesk.sign_in_links.enabled,
        )

    @post("/login")
    async def login(self, viewer: ViewerDep) -> Response[Any]:
        """Check the password; start a new session (fresh CSRF token)."""
        form = await viewer.form()
        email, password = text(form, "email"), form.get("password")
        try:
            principal = await viewer.helpdesk.auth.authenticate_password(
                email, password if isinstance(password, str) else ""
            )
        except NotAuthenticated:
            return viewer.page(
                "login.html",
                status_code=401,
                next=safe_next(text(form, "next")) or "",
                error=viewer.t("login.failed"),
                email=email,
                link_sign_in=viewer.helpdesk.sign_in_links.enabled,
            )
        viewer.set_session(viewer.session.signed_in(principal.id, viewer.ui.codec.lifetime))
        viewer.principal = principal
        return viewer.redirect(safe_next(text(form, "next")) or home_of(viewer))

    @post("/logout")
    async def logout(self, viewer: ViewerDep) -> Response[Any]:
        """End the session."""
        await viewer.form()
        viewer.set_session(Session(language=viewer.session.language))
        return viewer.redirect("/login")

    @post("/language")
    async def language(self, viewer: ViewerDep) -> Response[Any]:
        """Remember the chosen language in the session."""
        form = await viewer.form()
        choice = text(form, "language")
        if choice in CATALOGUES:
            viewer.set_session(viewer.session.with_language(choice))
        return viewer.redirect(safe_next(text(form, "back")) or home_of(viewer))

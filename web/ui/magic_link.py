"""Sign-in by e-mail link (customers): ask for a link, then open it.

``/login/link`` asks for an address and always answers the same page ("if it is a customer's,
a link is on its way"), whatever the address. The e-mailed link ``/login/link/{token}`` only
shows a "Continue" button: opening the link signs nobody in by itself (mail scanners fetch
links), the button's POST does, once, with a fresh session and CSRF token. Without a
configured ``web.public_url`` or a notifier every page here is a 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath

from ticketcore.errors import NotAuthenticated, NotFound, ValidationFailed
from ticketcore.services.sign_in_links import LIFETIME
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import text

MINUTES = int(LIFETIME.total_seconds() // 60)


def _require_enabled(viewer: Viewer) -> None:
    if not viewer.helpdesk.sign_in_links.enabled:
        raise NotFound("sign-in by e-mail link is not available")


class MagicLinkController(Controller):
    """``/login/link``: e-mailed sign-in links for customers."""

    path = "/login/link"
    include_in_schema = False

    @get("/")
    async def ask(self, viewer: ViewerDep) -> Response[Any]:
        """The form: one e-mail address."""
        _require_enabled(viewer)
        return viewer.page("login_link.html", minutes=MINUTES, sent=None, error=None)

    @post("/")
    async def send(self, viewer: ViewerDep) -> Response[Any]:
        """Queue a link (if the address is a customer's and not rate-limited); the same
        answer in every case."""
        _require_enabled(viewer)
        form = await viewer.form()
        email = text(form, "email")[:320]
        try:
            await viewer.helpdesk.sign_in_links.request(email, language=viewer.language)
        except ValidationFailed as exc:
            return viewer.page(
                "login_link.html",
                status_code=422,
                minutes=MINUTES,
                sent=None,
                error=exc.message,
                email=email,
            )
        return viewer.page("login_link.html", minutes=MINUTES, sent=email, error=None)

    @get("/{token:str}")
    async def open(self, token: FromPath[str], viewer: ViewerDep) -> Response[Any]:
        """The page the e-mailed link opens: a button that signs in (nothing used yet)."""
        _require_enabled(viewer)
        return viewer.page("login_link_open.html", token=token[:200], error=None)

    @post("/{token:str}")
    async def redeem(self, token: FromPath[str], viewer: ViewerDep) -> Response[Any]:
        """Use the link up and start a new session (fresh CSRF token)."""
        _require_enabled(viewer)
        await viewer.form()
        try:
            principal = await viewer.helpdesk.sign_in_links.redeem(token)
        except NotAuthenticated:
            return viewer.page(
                "login_link_open.html",
                status_code=400,
                token=None,
                error=viewer.t("login.link_invalid"),
            )
        viewer.set_session(viewer.session.signed_in(principal.id, viewer.ui.codec.lifetime))
        viewer.principal = principal
        return viewer.redirect("/portal")

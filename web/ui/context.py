"""Per-request state of the pages: who is signed in, their session, language and CSRF token;
rendering a page; reading a form after checking its CSRF token."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import Request, Response
from litestar.datastructures import Cookie, FormMultiDict
from litestar.di import NamedDependency
from litestar.enums import MediaType

from ticketcore.app import App
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.web.ui.i18n import (
    CATALOGUES,
    LANGUAGES,
    Translate,
    choose_language,
    translator,
)
from ticketcore.web.ui.livefeed import EventFeed
from ticketcore.web.ui.session import COOKIE_NAME, Session, SessionCodec
from ticketcore.web.ui.templating import build_environment, render

#: Message ids that templates may test for (``"event." ~ kind in messages``).
MESSAGE_IDS = frozenset(CATALOGUES["en"])

#: Every page forbids inline and third-party scripts and styles, framing and foreign forms.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """The page needs a signed-in user: the handler redirects to the sign-in page."""


class Forbidden(Exception):
    """The signed-in user's role may not see this page."""


class CsrfFailed(Exception):
    """A form came without the session's CSRF token."""


@dataclass
class UiState:
    """What the pages share in one web application."""

    helpdesk: App
    env: jinja2.Environment
    codec: SessionCodec
    feed: EventFeed
    secure_cookies: bool

    @classmethod
    def build(cls, helpdesk: App, *, feed_interval: float = 1.0) -> UiState:
        """Templates, the session key and the live feed of one helpdesk."""
        web = helpdesk.settings.web
        key = web.secret_key.encode() if web.secret_key else secrets.token_bytes(32)
        return cls(
            helpdesk=helpdesk,
            env=build_environment(helpdesk),
            codec=SessionCodec(key, web.session_hours * 3600),
            feed=EventFeed(helpdesk.db, interval=feed_interval),
            secure_cookies=web.secure_cookies,
        )


@dataclass
class Viewer:
    """The person looking at a page (``principal`` is None before sign-in)."""

    request: Request[Any, Any, Any]
    ui: UiState
    session: Session
    principal: Principal | None
    language: str
    t: Translate
    cookie_dirty: bool = False
    extra_cookies: list[Cookie] = field(default_factory=list)

    @property
    def helpdesk(self) -> App:
        """The helpdesk served."""
        return self.ui.helpdesk

    def require_user(self) -> Principal:
        """The signed-in user, or a redirect to the sign-in page."""
        if self.principal is None:
            raise SignInRequired
        return self.principal

    def require_staff(self) -> Principal:
        """An agent or admin; customers get 403."""
        principal = self.require_user()
        if not principal.is_staff:
            raise Forbidden
        return principal

    def require_admin(self) -> Principal:
        """An admin; everyone else gets 403."""
        principal = self.require_user()
        if principal.role is not Role.ADMIN:
            raise Forbidden
        return principal

    def require_customer(self) -> Principal:
        """A customer (the portal); staff get 403 and use the workspace."""
        principal = self.require_user()
        if principal.is_staff:
            raise Forbidden
        return principal

    def set_session(self, session: Session) -> None:
        """Replace the session; the cookie is sent with the response."""
        self.session = session
        self.cookie_dirty = True

    def cookie(self) -> Cookie:
        """The session cookie to send."""
        return Cookie(
            key=COOKIE_NAME,
            value=self.ui.codec.encode(self.session),
            path="/",
            httponly=True,
            secure=self.ui.secure_cookies,
            samesite="lax",
            max_age=int(self.ui.codec.lifetime),
        )

    def _finish(self, response: Response[Any]) -> Response[Any]:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if self.cookie_dirty:
            response.set_cookie(self.cookie())
        return response

    def page(self, template: str, status_code: int = 200, **context: Any) -> Response[str]:
        """Render a template into an HTML response."""
        query = self.request.query_params
        done = f"done.{query.get('done', '')}"
        html = render(
            self.ui.env,
            template,
            {
                "t": self.t,
                "lang": self.language,
                "languages": LANGUAGES,
                "user": self.principal,
                "csrf": self.session.csrf,
                "path": self.request.url.path,
                "messages": MESSAGE_IDS,
                "notice": self.t(done) if done in MESSAGE_IDS else None,
                "problem": (query.get("error") or "")[:300] or None,
                **context,
            },
        )
        return self._finish(Response(html, media_type=MediaType.HTML, status_code=status_code))

    def redirect(self, url: str, **notice: str) -> Response[Any]:
        """A 303 redirect after a form (``notice``: ``done=...`` or ``error=...``)."""
        if notice:
            sep = "&" if "?" in url else "?"
            url += sep + "&".join(f"{k}={quote(v)}" for k, v in notice.items())
        return self._finish(Response(b"", status_code=303, headers={"Location": url}))

    async def form(self) -> FormMultiDict:
        """The submitted form, after checking its CSRF token against the session's."""
        data = await self.request.form()
        token = data.get("_csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.session.csrf):
            raise CsrfFailed
        return data


async def provide_viewer(request: Request[Any, Any, Any]) -> Viewer:
    """Dependency: the viewer of this request (a fresh anonymous session if none)."""
    ui: UiState = request.app.state.ui
    session = ui.codec.decode(request.cookies.get(COOKIE_NAME))
    dirty = session is None
    session = session or Session()
    principal = None
    if session.user_id is not None:
        rows = await ui.helpdesk.db.fetch(
            "SELECT id, name, email, role, contact FROM app_user WHERE id = {} AND active = {}",
            session.user_id,
            True,
        )
        if rows:
            row = rows[0]
            principal = Principal(
                id=int(row["id"]),
                name=str(row["name"]),
                email=str(row["email"]),
                role=Role(row["role"]),
                contact_id=row["contact"],
            )
        else:  # deactivated or deleted: signed out
            session = Session(language=session.language)
            dirty = True
    language = choose_language(
        session.language,
        request.headers.get("accept-language", ""),
        ui.helpdesk.settings.web.default_language,
    )
    return Viewer(
        request=request,
        ui=ui,
        session=session,
        principal=principal,
        language=language,
        t=translator(language),
        cookie_dirty=dirty,
    )


#: Handler parameter type: the viewer, injected by name (``viewer``).
ViewerDep = NamedDependency[Viewer]

"""One Litestar router with every page, its dependencies and its HTML error pages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from ticketcore.errors import TicketCoreError
from ticketcore.web.ui.admin import AdminController
from ticketcore.web.ui.admin_agents import AdminAgentController
from ticketcore.web.ui.admin_categories import AdminCategoryController
from ticketcore.web.ui.admin_macros import AdminMacroController
from ticketcore.web.ui.admin_plugins import AdminPluginController
from ticketcore.web.ui.admin_rules import AdminRuleController
from ticketcore.web.ui.admin_teams import AdminTeamController
from ticketcore.web.ui.agent import AgentController
from ticketcore.web.ui.agent_extras import AgentExtrasController
from ticketcore.web.ui.auth_pages import SignInController
from ticketcore.web.ui.context import (
    CsrfFailed,
    Forbidden,
    SignInRequired,
    UiState,
    Viewer,
    provide_viewer,
)
from ticketcore.web.ui.files import FileController
from ticketcore.web.ui.i18n import choose_language, translator
from ticketcore.web.ui.kb_pages import KnowledgePages
from ticketcore.web.ui.live import LiveController
from ticketcore.web.ui.magic_link import MagicLinkController
from ticketcore.web.ui.portal import PortalController
from ticketcore.web.ui.saved_filters import SavedFilterController
from ticketcore.web.ui.session import COOKIE_NAME, Session
from ticketcore.web.ui.survey import SurveyController

log = logging.getLogger("ticketcore.web.ui")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _bare_viewer(request: Request[Any, Any, Any]) -> Viewer:
    """A viewer for error pages: session and language from the cookie, no database."""
    ui: UiState = request.app.state.ui
    session = ui.codec.decode(request.cookies.get(COOKIE_NAME)) or Session()
    language = choose_language(
        session.language,
        request.headers.get("accept-language", ""),
        ui.helpdesk.settings.web.default_language,
    )
    return Viewer(
        request=request,
        ui=ui,
        session=session,
        principal=None,
        language=language,
        t=translator(language),
    )


def _error_page(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    viewer = _bare_viewer(request)
    return viewer.page("error.html", status_code=status, status=status, message=message)


def sign_in_required(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    """Redirect to the sign-in page, coming back here afterwards (GET pages only)."""
    viewer = _bare_viewer(request)
    back = request.url.path if request.method == "GET" else ""
    return viewer.redirect("/login" + (f"?next={quote(back)}" if back else ""))


def forbidden(request: Request[Any, Any, Any], _: Forbidden) -> Response[Any]:
    """403: signed in, but not allowed here."""
    return _error_page(request, 403, _bare_viewer(request).t("error.forbidden"))


def csrf_failed(request: Request[Any, Any, Any], _: CsrfFailed) -> Response[Any]:
    """403: a form without the right CSRF token (stale page or a forged request)."""
    return _error_page(request, 403, _bare_viewer(request).t("error.csrf"))


def core_error(request: Request[Any, Any, Any], exc: TicketCoreError) -> Response[Any]:
    """Domain errors as a page with their status (404 for another customer's ticket)."""
    return _error_page(request, exc.status_code, exc.message)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Bad parameters and the like, as a page."""
    return _error_page(request, exc.status_code, str(exc.detail))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Unexpected failures: logged, shown without internals."""
    log.exception("page failed", exc_info=exc)
    return _error_page(request, 500, _bare_viewer(request).t("error.internal"))


def ui_routes() -> list[Router]:
    """The pages and the static files (``/static``)."""
    pages = Router(
        path="/",
        route_handlers=[
            SignInController,
            MagicLinkController,
            AgentController,
            AgentExtrasController,
            SavedFilterController,
            PortalController,
            SurveyController,
            KnowledgePages,
            AdminController,
            AdminPluginController,
            AdminRuleController,
            AdminMacroController,
            AdminTeamController,
            AdminAgentController,
            AdminCategoryController,
            LiveController,
            FileController,
        ],
        dependencies={"viewer": Provide(provide_viewer)},
        exception_handlers={
            SignInRequired: sign_in_required,
            Forbidden: forbidden,
            CsrfFailed: csrf_failed,
            TicketCoreError: core_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        cache_control=None,
        include_in_schema=False,
    )
    return [pages, static]

"""Authentication of API callers: ``Authorization: Bearer <token>``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from ticketcore.app import App
from ticketcore.domain.models import Principal
from ticketcore.errors import NotAuthenticated


def helpdesk_of(request: Request[Any, Any, Any]) -> App:
    """The helpdesk application this web app serves."""
    return request.app.state.helpdesk


async def provide_principal(
    request: Request[Any, Any, Any], helpdesk: NamedDependency[App]
) -> Principal:
    """The authenticated caller, or 401 with a JSON body.

    It depends on ``helpdesk`` on purpose: dependencies at the same depth are resolved in an
    anyio task group per request (two extra tasks, about a tenth of a create's CPU time);
    chained, each is simply awaited.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "send an API token: 'Authorization: Bearer <token>'", field="Authorization"
        )
    return await helpdesk.auth.authenticate_token(token.strip())


async def provide_helpdesk(request: Request[Any, Any, Any]) -> App:
    """Dependency: the helpdesk application."""
    return helpdesk_of(request)


#: Handler parameter types: injected by name (``helpdesk``, ``principal``).
HelpdeskDep = NamedDependency[App]
PrincipalDep = NamedDependency[Principal]

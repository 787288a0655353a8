"""Every error leaves as JSON saying what is wrong and where."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from ticketcore.errors import TicketCoreError

log = logging.getLogger("ticketcore.web")


def _field_of(extra: Any) -> str | None:
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        key = extra[0].get("key")
        return str(key) if key else None
    return None


def core_error(_: Request[Any, Any, Any], exc: TicketCoreError) -> Response[Any]:
    """Domain errors carry their own status and body."""
    return Response(exc.to_dict(), status_code=exc.status_code)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Bad request bodies and parameters: 422 with the field and the decoder's message."""
    extra = exc.extra
    message = exc.detail
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        message = str(extra[0].get("message") or message)
    body: dict[str, Any] = {"error": "validation_failed", "message": message}
    field = _field_of(extra)
    if field:
        body["field"] = field
    if extra:
        body["detail"] = {"errors": extra}
    return Response(body, status_code=422)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Other HTTP errors (404 route, 405 method, 401) in the same JSON shape."""
    code = "not_authenticated" if isinstance(exc, NotAuthorizedException) else "http_error"
    return Response(
        {"error": code, "message": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Unexpected failures: logged with the traceback, reported without internals."""
    log.exception("unhandled error", exc_info=exc)
    return Response(
        {"error": "internal_error", "message": "internal server error"}, status_code=500
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    TicketCoreError: core_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}

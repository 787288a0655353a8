"""Every error leaves as JSON saying what is wrong and where."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from ticketcore.errors import TicketCoreError

log = logging.getLogger("ticketcore.web")


#: msgspec names an unknown or missing field only in its message, e.g. "Object contains
#: unknown field `colour`"; Litestar's ``key`` is then the enclosing object.
_FIELD_IN_MESSAGE = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]+)`")


def _field_of(extra: Any) -> str | None:
    if not (isinstance(extra, list) and extra and isinstance(extra[0], dict)):
        return None
    first = extra[0]
    key = str(first.get("key") or "")
    # Litestar reports the whole request body under the handler's parameter name, "data",
    # which means nothing to a client: the body's own fields are top-level names.
    if first.get("source") == "body" and key == "data":
        key = ""
    # Name the offending field itself ("colour", "requester.emial"), not its parent object.
    named = _FIELD_IN_MESSAGE.match(str(first.get("message") or ""))
    if named:
        key = f"{key}.{named.group(1)}" if key else named.group(1)
    return key or None


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

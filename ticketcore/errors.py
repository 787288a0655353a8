"""Errors raised by the core; the web layer maps each to an HTTP status with a JSON body."""

from __future__ import annotations

from typing import Any


class TicketCoreError(Exception):
    """Base class: carries a message, an optional field it concerns and extra detail."""

    status_code = 400
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API client receives."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.detail:
            body["detail"] = self.detail
        return body


class ValidationFailed(TicketCoreError):
    """Input that does not fit: wrong type, unknown value, too large."""

    status_code = 422
    code = "validation_failed"


class NotFound(TicketCoreError):
    """The object does not exist or the caller may not know it exists."""

    status_code = 404
    code = "not_found"


class PermissionDenied(TicketCoreError):
    """The caller is known but not allowed to do this."""

    status_code = 403
    code = "forbidden"


class NotAuthenticated(TicketCoreError):
    """No valid credentials were given."""

    status_code = 401
    code = "not_authenticated"


class VersionConflict(TicketCoreError):
    """Optimistic concurrency: the object changed since the caller read it."""

    status_code = 409
    code = "version_conflict"


class DuplicateMessage(TicketCoreError):
    """A message with this Message-ID is already on record (a redelivered mail, a retry)."""

    status_code = 409
    code = "duplicate_message"


class InvalidTransition(TicketCoreError):
    """A lifecycle transition that the state machine does not allow from the current status."""

    status_code = 409
    code = "invalid_transition"


class TransitionVetoed(TicketCoreError):
    """A plugin's ``ticket_pre_transition`` hook refused the transition."""

    status_code = 409
    code = "transition_vetoed"


class ConfigError(TicketCoreError):
    """Configuration or plugin set-up is wrong; ``problems`` lists every one found."""

    code = "config_error"

    def __init__(self, problems: list[str]) -> None:
        text = "configuration problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)
        self.problems = problems

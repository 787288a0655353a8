"""Signed session cookies: who is signed in, their CSRF token and chosen language.

The cookie holds a small JSON payload and an HMAC-SHA256 of it under the secret key
(``[web] secret_key``), so any server process with the same key can read it: no session
store is needed. It is HttpOnly, SameSite=Lax and Secure (unless ``[web] secure_cookies =
false`` for plain-HTTP development).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace

COOKIE_NAME = "tc_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """The content of a session cookie. ``user_id`` is None before sign-in."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: int | None = None
    expires: float = 0.0
    language: str | None = None

    def signed_in(self, user_id: int, lifetime_seconds: float) -> Session:
        """A new session for ``user_id`` with a fresh CSRF token (no fixation)."""
        return Session(
            user_id=user_id, expires=time.time() + lifetime_seconds, language=self.language
        )

    def with_language(self, language: str) -> Session:
        """The same session with another language."""
        return replace(self, language=language)


class SessionCodec:
    """Encodes sessions into signed cookie values and back."""

    def __init__(self, key: bytes, lifetime_seconds: float) -> None:
        self.key = key
        self.lifetime = lifetime_seconds

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())

    def encode(self, session: Session) -> str:
        """The cookie value of ``session``."""
        body = {"c": session.csrf, "u": session.user_id, "e": session.expires}
        if session.language:
            body["l"] = session.language
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str | None) -> Session | None:
        """The session in a cookie value; None when absent, forged, malformed or expired
        (an expired signed-in session keeps nothing but its language)."""
        if not value or "." not in value:
            return None
        payload, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(
                csrf=str(body["c"]),
                user_id=int(body["u"]) if body.get("u") is not None else None,
                expires=float(body.get("e") or 0),
                language=body.get("l"),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.user_id is not None and session.expires < time.time():
            return Session(language=session.language)
        return session

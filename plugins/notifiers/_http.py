"""What the HTTP notifiers (``webhook``, ``chat``) share: posting with a delivery log.

Each POST attempt is logged (logger ``ticketcore.notifiers.<name>``), kept in a bounded
in-memory log (``HttpPoster.attempts``) and, once the application has started, written to the
helpdesk's delivery log (``app.delivery_log``, table ``notification_delivery``, read by admins
through ``GET /api/v1/notification-deliveries``), with the URL, the HTTP status, the error and
the duration. URLs are shown without their path and credentials (``https://hooks.slack.com/…``):
chat webhook URLs carry their token in the path, and the log and the job's ``last_error`` must
not leak it (a filter on the ``httpx`` logger shortens them in httpx's own request log too).

Failure semantics: any non-2xx answer (redirects are not followed) or network error makes the
``notify`` call raise, so the job worker retries the notifier with backoff. A URL that already
acknowledged a delivery (same idempotency key) is not posted to again by this process when the
notifier is retried for another URL; across processes, receivers de-duplicate on the delivery
id header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from ticketcore import hookimpl

#: How many acknowledged (delivery, url) pairs a notifier remembers, and attempts it logs.
_ACKED_MAX = 10_000
_ATTEMPTS_MAX = 500


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST of one notification to one URL."""

    delivery: str
    url: str
    status: int | None
    error: str | None
    duration_ms: float
    kind: str = ""
    ticket_id: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged the delivery with a 2xx status."""
        return self.error is None


class DeliveryFailed(Exception):
    """One or more URLs did not acknowledge a notification: the job worker retries."""


def safe_url(url: str) -> str:
    """``scheme://host[:port]/…``: enough to tell endpoints apart, without path tokens or
    user info."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{tail}"


class _UrlRedactor(logging.Filter):
    """Shortens the notifiers' URLs in the ``httpx`` logger's records: httpx logs every
    request's full URL at INFO, and a chat webhook's path is its secret."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.urls:
            return True
        message = record.getMessage()
        redacted = message
        for url, shown in self.urls.items():
            redacted = redacted.replace(url, shown)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACTOR = _UrlRedactor()
logging.getLogger("httpx").addFilter(_REDACTOR)


#: Builds the request for one URL: (body, headers).
RequestBuilder = Callable[[str], tuple[bytes, dict[str, str]]]
#: Stores one attempt durably (the application's delivery log).
Recorder = Callable[[DeliveryAttempt], Awaitable[None]]


class HttpPoster:
    """An httpx client opened between ``startup`` and ``shutdown`` (a short-lived one is
    used when called outside them) that posts to several URLs with a delivery log."""

    def __init__(self, name: str, timeout_seconds: float) -> None:
        self.name = name
        self.timeout = timeout_seconds
        self.log = logging.getLogger(f"ticketcore.notifiers.{name}")
        self.attempts: deque[DeliveryAttempt] = deque(maxlen=_ATTEMPTS_MAX)
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._client: httpx.AsyncClient | None = None
        #: Set at ``startup``: writes each attempt to the delivery log.
        self.recorder: Recorder | None = None

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)

    async def open(self) -> None:
        """Open the shared client (``startup``)."""
        if self._client is None:
            self._client = self._new_client()

    async def close(self) -> None:
        """Close the shared client (``shutdown``)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def post_all(
        self,
        delivery: str,
        urls: list[str],
        build: RequestBuilder,
        *,
        kind: str = "",
        ticket_id: int | None = None,
    ) -> None:
        """POST to every URL not yet acknowledged for ``delivery``, concurrently; record each
        attempt; raise :class:`DeliveryFailed` naming each URL that failed. ``kind`` and
        ``ticket_id`` (of the notification) go into the delivery log."""
        for url in urls:
            if url not in _REDACTOR.urls:
                _REDACTOR.urls[url] = safe_url(url)
        todo = [u for u in dict.fromkeys(urls) if (delivery, u) not in self._acked]
        if not todo:
            return
        if self._client is not None:
            results = await asyncio.gather(
                *(self._post(self._client, delivery, u, build) for u in todo)
            )
        else:
            async with self._new_client() as client:
                results = await asyncio.gather(
                    *(self._post(client, delivery, u, build) for u in todo)
                )
        results = [msgspec.structs.replace(a, kind=kind, ticket_id=ticket_id) for a in results]
        await self._record(results)
        failed = [a for a in results if not a.ok]
        if failed:
            detail = "; ".join(f"{a.url}: {a.error}" for a in failed)
            raise DeliveryFailed(f"{len(failed)} of {len(results)} URL(s) failed: {detail}")

    async def _record(self, attempts: list[DeliveryAttempt]) -> None:
        """Write the attempts to the delivery log; a failure to write is logged, never
        raised (the deliveries happened, and retrying them would repeat them)."""
        if self.recorder is None:
            return
        for attempt in attempts:
            try:
                await self.recorder(attempt)
            except Exception as exc:
                self.log.warning("delivery %s not logged: %s", attempt.delivery, exc)

    async def _post(
        self, client: httpx.AsyncClient, delivery: str, url: str, build: RequestBuilder
    ) -> DeliveryAttempt:
        body, headers = build(url)
        shown = safe_url(url)
        status: int | None = None
        error: str | None = None
        start = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                snippet = " ".join(response.text[:200].split())
                error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = round((time.perf_counter() - start) * 1000, 1)
        attempt = DeliveryAttempt(
            delivery=delivery, url=shown, status=status, error=error, duration_ms=duration_ms
        )
        self.attempts.append(attempt)
        if error is None:
            self._acked[(delivery, url)] = None
            while len(self._acked) > _ACKED_MAX:
                self._acked.popitem(last=False)
            self.log.info(
                "delivered %s to %s: HTTP %s in %.1f ms", delivery, shown, status, duration_ms
            )
        else:
            self.log.warning(
                "delivery %s to %s failed in %.1f ms: %s", delivery, shown, duration_ms, error
            )
        return attempt


def kind_enabled(kinds: list[str], kind: str) -> bool:
    """Whether a notifier filtered to ``kinds`` (empty: every kind) handles ``kind``."""
    return not kinds or kind in kinds


class PostingNotifier:
    """Base of the HTTP notifiers: owns an ``HttpPoster`` opened and closed with the app."""

    poster: HttpPoster

    @hookimpl
    async def startup(self, app: Any) -> None:
        """Open the HTTP client; record attempts in the application's delivery log."""
        await self.poster.open()
        log = getattr(app, "delivery_log", None)
        if log is not None:
            name = self.poster.name

            async def record(attempt: DeliveryAttempt) -> None:
                await log.record(
                    notifier=name,
                    delivery=attempt.delivery,
                    target=attempt.url,
                    status=attempt.status,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                    kind=attempt.kind,
                    ticket_id=attempt.ticket_id,
                )

            self.poster.recorder = record

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Close the HTTP client; stop recording."""
        await self.poster.close()
        self.poster.recorder = None

"""Real parts for testing notifiers: an HTTP receiver on 127.0.0.1.

Nothing here is imported by the notifiers themselves; tests (ours and those of notifier
plugins) use it:

- :class:`HttpReceiver`: a tiny HTTP/1.1 server on a free loopback port that records every
  request and can be told to fail the first N of them (or to stop answering altogether);
- :func:`send_notification`: deliver one notification through the outbox, as the core does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType
from typing import Any

import msgspec


class ReceivedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request as the receiver saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class HttpReceiver:
    """An HTTP server on ``127.0.0.1`` (free port) recording requests; use ``async with``.

    ``fail_first=N`` answers the first N requests with ``fail_status``; the others get 200.
    ``url(path)`` is the address to configure; ``port`` picks the port (default: a free
    one), e.g. to bring a receiver back where a stopped one listened. Bounded: bodies over
    1 MiB are refused, and each connection is served within 10 seconds.
    """

    MAX_BODY = 1 << 20

    def __init__(self, *, fail_first: int = 0, fail_status: int = 500, port: int = 0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[ReceivedRequest] = []
        self.port = port
        self._server: asyncio.Server | None = None

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> HttpReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening (the port then refuses connections)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), timeout=10)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > self.MAX_BODY:
            raise ValueError("body too large")
        body = await reader.readexactly(length) if length else b""
        failing = self.fail_first > 0
        if failing:
            self.fail_first -= 1
        status = self.fail_status if failing else 200
        self.requests.append(
            ReceivedRequest(method=method, path=path, headers=headers, body=body, status=status)
        )
        text = b"failing on purpose" if failing else b"ok"
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode("ascii")
            + text
        )
        await writer.drain()


async def send_notification(app: Any, notification: Any) -> None:
    """Enqueue a ``notify`` job as the core does (inside a transaction), then run the worker
    until no job is due."""
    async with app.db.transaction():
        await app.jobs.enqueue(
            "notify",
            {"notification": msgspec.to_builtins(notification)},
            key=notification.idempotency_key,
        )
    await app.jobs.drain()

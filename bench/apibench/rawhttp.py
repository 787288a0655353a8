"""A lean HTTP/1.1 keep-alive client for the load generator.

httpx costs about as much CPU per request as the server under test (1.5-2 ms here), and on a
2-core machine client and server share the cores: the client's cost became the measured
limit. This client does only what the benchmark needs: one persistent connection, a request
written in one call, a response read by Content-Length (or chunks). It is not a general
client and is used only against our own server on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import msgspec


class RawResponse:
    """Status, headers and body of one response."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.content)


class RawHTTPError(Exception):
    """The connection failed or the response was malformed."""


class RawClient:
    """One keep-alive connection to ``base_url``; one request at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        fixed = {"Host": f"{self.host}:{self.port}", "Connection": "keep-alive", **headers}
        self._fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, url: str, json: Any = None) -> RawResponse:
        """Send a request (``json`` encoded as the body) and read the whole response."""
        try:
            return await asyncio.wait_for(self._exchange(method, url, json), self.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            await self.aclose()
            raise RawHTTPError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, method: str, url: str, payload: Any) -> RawResponse:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        body = b"" if payload is None else msgspec.json.encode(payload)
        head = f"{method} {url} HTTP/1.1\r\n{self._fixed_headers}"
        if payload is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode("latin-1") + body)
        status, headers = await self._read_head(self._reader)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._read_chunked(self._reader)
        else:
            content = await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return RawResponse(status, headers, content)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def aclose(self) -> None:
        """Close the connection (a later request reconnects)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


__all__ = ["RawClient", "RawHTTPError", "RawResponse"]

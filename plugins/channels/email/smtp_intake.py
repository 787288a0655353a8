"""The built-in SMTP server that receives mail for our addresses (aiosmtpd).

It runs on the application's own event loop (not aiosmtpd's threaded ``Controller``), so
intake uses the same database connections as everything else. The reply to ``DATA`` is sent
only after the intake committed: ``250`` when the mail is on record, ``451`` (try again
later) when anything failed, so the sending server keeps the mail and retries; the retry is
recognised by its Message-ID and never becomes a second ticket. Recipients that are not our
addresses are refused at ``RCPT`` (``550``), and mail over the size limit at ``DATA`` (``552``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("ticketcore.channels.email.smtp")

#: ``ingest(raw, source=..., recipients=...)``; raising means "not committed".
IngestFn = Callable[..., Awaitable[Any]]


class SmtpServerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[plugin.channels.email.smtp_server]``: where the intake listens."""

    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); the bound port is on ``SmtpIntakeServer.port``.
    port: int = 2525
    #: Name announced in the greeting; defaults to the machine's FQDN.
    hostname: str | None = None
    #: Mail larger than this is refused with 552 before it is stored.
    max_message_bytes: int = 25 * 1024 * 1024


class IntakeHandler:
    """aiosmtpd handler: accept our recipients, ingest the data, answer after the commit."""

    def __init__(self, ingest: IngestFn, accepts: Callable[[str], bool]) -> None:
        self.ingest = ingest
        self.accepts = accepts

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept only addresses this helpdesk receives for (``+token`` forms included)."""
        if not self.accepts(address):
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Ingest the mail; ``451`` on any failure so the sender retries."""
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        source = f"smtp:{peer}"
        try:
            result = await self.ingest(raw, source=source, recipients=list(envelope.rcpt_tos))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: intake failed; answering 451 so the sender retries", source)
            return "451 4.3.0 Temporary failure while storing the message, please retry"
        outcome = getattr(result, "outcome", "accepted")
        return f"250 2.0.0 Message accepted ({outcome})"


class SmtpIntakeServer:
    """Listens on the running event loop; ``start`` then ``stop``."""

    def __init__(
        self,
        settings: SmtpServerSettings,
        ingest: IngestFn,
        accepts: Callable[[str], bool],
    ) -> None:
        self.settings = settings
        self.handler = IntakeHandler(ingest, accepts)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port = 0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the SMTP intake is not running")
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        s = self.settings
        kwargs: dict[str, Any] = {
            "data_size_limit": s.max_message_bytes,
            "enable_SMTPUTF8": True,
            "decode_data": False,
        }
        if s.hostname:
            kwargs["hostname"] = s.hostname
        return SMTP(self.handler, **kwargs)

    async def start(self) -> None:
        """Bind and serve in the background."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.settings.host, port=self.settings.port
        )
        log.info("SMTP intake listening on %s:%s", self.settings.host, self.port)

    async def stop(self) -> None:
        """Stop accepting and close the listening socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def accepts_for(addresses: Sequence[str]) -> Callable[[str], bool]:
    """A recipient check for these base addresses (``+token`` suffixes allowed)."""
    from ticketcore.plugins.channels.email.ids import base_address

    ours = {a.lower() for a in addresses}
    return lambda address: base_address(address) in ours

"""Server-sent events: the pages learn of ticket changes without reloading.

Staff get every ticket event; a customer only the public events (new messages, status
changes) of their own tickets. A stream ends after ``MAX_STREAM_SECONDS``; the browser's
EventSource reconnects by itself, resuming after the last event id it saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, get
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ticketcore.domain.models import Principal
from ticketcore.web.ui.context import SECURITY_HEADERS, ViewerDep
from ticketcore.web.ui.livefeed import LiveEvent

MAX_STREAM_SECONDS = 300.0
KEEPALIVE_SECONDS = 15.0
CUSTOMER_KINDS = frozenset({"created", "message_added", "status_changed"})


def visible(principal: Principal, event: LiveEvent) -> bool:
    """Whether ``principal`` may learn of ``event``."""
    if principal.is_staff:
        return True
    return event.requester_id == principal.contact_id and event.kind in CUSTOMER_KINDS


class LiveController(Controller):
    """``/live``"""

    include_in_schema = False

    @get("/live")
    async def live(self, viewer: ViewerDep, after: FromQuery[int | None] = None) -> ServerSentEvent:
        """A stream of ``ticket`` events: ``{"id", "ticket_id", "kind"}``.

        Events after ``after`` (the newest event id when the page was rendered), or after
        the ``Last-Event-ID`` the browser sends when it reconnects, come first: nothing
        that happened between rendering and connecting is missed.
        """
        principal = viewer.require_user()
        feed = viewer.ui.feed
        resume = viewer.request.headers.get("last-event-id", "")
        start = int(resume) if resume.isdigit() else after

        def message(event: LiveEvent) -> ServerSentEventMessage:
            data = {"id": event.id, "ticket_id": event.ticket_id, "kind": event.kind}
            return ServerSentEventMessage(event="ticket", id=event.id, data=json.dumps(data))

        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            deadline = time.monotonic() + MAX_STREAM_SECONDS
            async with feed.subscribe() as queue:
                yield ServerSentEventMessage(event="ready", data="{}", retry=2000)
                sent: set[int] = set()
                if start is not None:
                    for event in await feed.since(start):
                        sent.add(event.id)
                        if visible(principal, event):
                            yield message(event)
                while time.monotonic() < deadline:
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                    if event.id not in sent and visible(principal, event):
                        yield message(event)

        headers: dict[str, Any] = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        headers["X-Content-Type-Options"] = SECURITY_HEADERS["X-Content-Type-Options"]
        return ServerSentEvent(stream(), headers=headers)

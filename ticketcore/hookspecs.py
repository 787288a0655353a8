"""The plugin contract: every hook a TicketCore plugin may implement, grouped by stage.

Conventions:
- Hooks are called with keyword arguments only; implementations must not give parameters
  default values (pluggy would ignore the caller's value).
- *Decision* hooks (``classify_ticket``, ``route_ticket``, ``compute_sla``) are synchronous,
  pure functions of the snapshot they get: no I/O, replayable offline.
- Hooks marked *may be async* can be ``async def``; the host awaits them (see ``hooks.py``).
- *First result* hooks stop at the first implementation that returns something other than None.
- *Isolated* hooks: one implementation failing is recorded and never stops the others.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import pluggy

from ticketcore.domain.models import (
    Actor,
    Classification,
    EscalationStep,
    InboundMessage,
    KbHit,
    Notification,
    RouteDecision,
    RoutingContext,
    Screening,
    SlaAlert,
    SlaTargets,
    Ticket,
    TicketEvent,
)

PROJECT = "ticketcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# --- boot -----------------------------------------------------------------------------------


@hookspec(historic=True)
def configure(settings: Any) -> None:
    """Called once with the validated :class:`~ticketcore.config.Settings` after loading.

    Historic: a plugin registered later still receives it. Must not do I/O.
    """


@hookspec
def startup(app: Any) -> Awaitable[None] | None:
    """The application is starting (may be async). ``app`` is the :class:`~ticketcore.App`."""


@hookspec
def shutdown(app: Any) -> Awaitable[None] | None:
    """The application is stopping (may be async, isolated): release what ``startup`` took."""


@hookspec
def register_tables() -> list[Any]:
    """Return piccolo ``Table`` classes this plugin stores data in; created by migrate."""
    return []


@hookspec
def register_routes() -> list[Any]:
    """Return Litestar route handlers or controllers to mount in the web application."""
    return []


@hookspec
def register_templates() -> list[Any]:
    """Return folders (``str`` or ``pathlib.Path``) of Jinja2 templates for the web pages.

    They are searched after the organisation's own ``[web] templates_dir`` and before the
    built-in templates, so a plugin can add pages and override built-in blocks, and an
    organisation can still override the plugin's templates.
    """
    return []


@hookspec
def register_jobs() -> dict[str, Any]:
    """Return ``{job_kind: async handler(app, job)}`` for durable background jobs.

    ``job`` is a :class:`~ticketcore.jobs.JobRecord` (its ``payload`` is the dict given to
    ``app.jobs.enqueue``). Job kinds must be unique across plugins and the core's own
    (``ticket_event``, ``notify``, ``deliver_reply``): a duplicate stops start-up.
    """
    return {}


# --- intake ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def screen_inbound(message: InboundMessage) -> Screening | None:
    """First result: say whether an inbound message may become a ticket.

    Return ``Screening(verdict="reject" | "record_only", reason=...)`` for bounces,
    auto-replies, loops and spam; None to let the next screener decide. Sync, pure.
    """


@hookspec(firstresult=True)
def match_inbound(message: InboundMessage, candidates: list[Ticket]) -> int | None:
    """First result: the id of the ticket (among ``candidates``) this message continues.

    ``candidates`` are tickets the host found by message ids and tokens; returning None lets
    the next matcher decide, and with no match a new ticket is opened. Sync, pure.
    """


# --- triage ---------------------------------------------------------------------------------


@hookspec
def classify_ticket(ticket: Ticket, context: dict[str, Any]) -> Classification | None:
    """Suggest category, priority and tags for a new ticket. Sync, pure.

    Every non-None answer is applied in call order (later plugins win on the same field) and
    recorded in the history with its reason.
    """


@hookspec
def enrich_ticket(ticket: Ticket) -> Awaitable[dict[str, Any] | None] | dict[str, Any] | None:
    """Look up outside data for a new ticket (may be async: CRM, directory).

    Return a dict merged into the ticket's custom fields, with an optional ``"priority"`` key
    to raise (never lower) the priority, e.g. for a VIP, and an optional ``"reason"`` recorded
    in the history (neither is stored as a custom field). Isolated: a failing lookup is
    logged and recorded as ``enrichment_failed``.
    """


# --- decide ---------------------------------------------------------------------------------


@hookspec
def route_ticket(ticket: Ticket, context: RoutingContext) -> RouteDecision | None:
    """Decide where a ticket goes. Sync and pure; called in config order as a chain.

    Each non-None decision sets the team and/or the assignee and is recorded with its reason;
    the chain stops at the first decision that names an assignee or is ``final``. A later
    strategy sees the team chosen by an earlier one in ``ticket.team_id``. Assign only agents
    whose ``AgentSnapshot.routable`` is true (switched on, online and on shift).
    """


@hookspec(firstresult=True)
def compute_sla(ticket: Ticket, now: datetime) -> SlaTargets | None:
    """First result: due times (and warning times) for a ticket. Sync, pure.

    Called when a ticket is created, when its status changes (the clock pauses while it
    waits on the customer or is on hold: ``ticket.sla.paused_since``), and when an agent
    or the customer replies. ``ticket.sla`` holds the finished ``pauses`` and the start of
    the next-response clock (``awaiting_reply_since``). Return None when no policy applies;
    a target left None is not tracked. Wrappers can adjust the answer (e.g. calendars).
    """


@hookspec(firstresult=True)
def sla_escalation(ticket: Ticket, alert: SlaAlert) -> list[EscalationStep] | None:
    """First result: the escalation steps to run for an SLA warning or breach. Sync, pure.

    The host runs each step exactly once (notify, raise priority, reassign to a team),
    records it in the ticket's history, and delivers notifications through the outbox.
    Return None (or an empty list) for no escalation.
    """


# --- lifecycle ------------------------------------------------------------------------------


@hookspec
def ticket_pre_transition(ticket: Ticket, transition: str, actor: Actor) -> str | None:
    """Called inside the transaction before a lifecycle transition; sync.

    Return a reason string to veto (the caller gets HTTP 409 with it), None to allow.
    """


@hookspec
def ticket_event(event: TicketEvent, ticket: Ticket) -> Awaitable[None] | None:
    """React to a committed change (may be async, isolated).

    Delivered by the job worker from the outbox: at least once per implementation, retried on
    failure; use ``event.id`` as an idempotency key for outside effects.
    """


# --- outbound -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def deliver_reply(ticket: Ticket, reply: Any, channel: str) -> Awaitable[bool | None] | None:
    """First result: send an agent's public reply through ``channel`` (may be async).

    The plugin that owns the channel returns True once sent; others return None.
    """


@hookspec
def notify(notification: Notification) -> Awaitable[None] | None:
    """Deliver a notification on this notifier's transport (may be async, isolated)."""


# --- knowledge ------------------------------------------------------------------------------


@hookspec
def kb_search(query: str, limit: int) -> Awaitable[list[KbHit]] | list[KbHit]:
    """Search this knowledge source (may be async); the host merges and ranks all answers."""
    return []


@hookspec
def kb_suggest(ticket: Ticket, limit: int) -> Awaitable[list[KbHit]] | list[KbHit]:
    """Articles likely to help with ``ticket`` (may be async); merged like ``kb_search``."""
    return []

"""What automation rules do to a ticket: each action through the ticket services, so it is
recorded in the history like any change, with the rule as the actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from ticketcore.domain.automation import (
    AddTags,
    Note,
    Notify,
    RemoveTags,
    Reply,
    Rule,
    SetField,
    Transition,
    Webhook,
)
from ticketcore.domain.commands import NewEntry, TicketPatch, TransitionRequest
from ticketcore.domain.enums import Priority, Role
from ticketcore.domain.models import Notification, Principal, Ticket, TicketEvent
from ticketcore.errors import ValidationFailed
from ticketcore.services.macros import render_body

if TYPE_CHECKING:
    from ticketcore.app import App
    from ticketcore.jobs import JobRecord


#: Whether an action changes the ticket (then the next one reads it again).
_CHANGES_TICKET: dict[type, bool] = {Notify: False, Webhook: False}


def rule_principal(rule: Rule) -> Principal:
    """Who a rule acts as: the helpdesk itself, named after the rule in the history."""
    return Principal(id=0, name=f"rule {rule.name!r}", email="", role=Role.ADMIN)


def tags_after(action: AddTags | RemoveTags, tags: list[str]) -> tuple[list[str], str]:
    """The tags once ``action`` is applied to ``tags`` (before the ticket services clean
    them), and how the history describes the action."""
    wanted = [t.strip().lower() for t in action.tags]
    if isinstance(action, AddTags):
        return [*tags, *(t for t in wanted if t not in tags)], f"add tags {', '.join(wanted)}"
    return [t for t in tags if t not in wanted], f"remove tags {', '.join(wanted)}"


async def apply_actions(
    app: App, rule: Rule, ticket: Ticket, event: TicketEvent
) -> tuple[list[str], Ticket | None]:
    """Run a rule's actions in order on ``ticket`` (read in the caller's transaction, which
    they join); return a short description of each, for the history, and the ticket as the
    actions left it when the ticket services returned it (None: read it again)."""
    actor = rule_principal(rule)
    tickets = app.tickets
    done: list[str] = []
    current = ticket
    # The ticket after the last action, as the ticket services returned it: reused instead
    # of reading the row again (one round trip per action, and one more for the caller).
    latest: Ticket | None = ticket
    for i, action in enumerate(rule.actions):
        key = f"automation:{rule.id}:{event.id}:{i}"
        if i and _CHANGES_TICKET.get(type(rule.actions[i - 1]), True):
            # The previous action changed it.
            current = latest if latest is not None else await tickets.snapshot(ticket.id)
        if isinstance(action, SetField):
            patch = await _patch(app, action)
            latest = await tickets.update(actor, ticket.id, patch, version=current.version)
            done.append(f"set {action.field} to {action.value!r}")
        elif isinstance(action, AddTags | RemoveTags):
            tags, description = tags_after(action, current.tags)
            latest = await tickets.update(
                actor, ticket.id, TicketPatch(tags=tags), version=current.version
            )
            done.append(description)
        elif isinstance(action, Transition):
            latest = await tickets.transition(
                actor, ticket.id, TransitionRequest(transition=action.transition)
            )
            done.append(f"transition {action.transition}")
        elif isinstance(action, Reply):
            await app.macros.apply(actor, action.macro_id, ticket.id)
            latest = None  # a macro may change fields and status
            done.append(f"canned reply (macro {action.macro_id})")
        elif isinstance(action, Note):
            body = render_body(action.body, current, actor)
            await tickets.add_entry(actor, ticket.id, NewEntry(body=body), internal=True)
            latest = None
            done.append("internal note")
        elif isinstance(action, Notify):
            await _notify(app, rule, action, current, key)
            done.append(f"notify {', '.join(action.to)}")
        elif isinstance(action, Webhook):
            hook_body = {
                "rule": {"id": rule.id, "name": rule.name},
                "event": msgspec.to_builtins(event),
                "ticket": msgspec.to_builtins(await tickets.snapshot(ticket.id)),  # with links
            }
            await app.jobs.enqueue(
                "automation_webhook", {"url": action.url, "body": hook_body}, key=key
            )
            done.append(f"webhook {action.url}")
    return done, latest


async def _patch(app: App, action: SetField) -> TicketPatch:
    value = action.value
    if action.field == "priority":
        return TicketPatch(priority=Priority(str(value)))
    if action.field == "category":
        return TicketPatch(category=None if value is None else str(value))
    if action.field == "team":
        team = None if value is None else await app.automation.resolve_team(value)
        if value is not None and team is None:
            raise ValidationFailed(f"team {value!r} no longer exists", field="team")
        return TicketPatch(team_id=team)
    agent = None if value is None else await app.automation.resolve_agent(value)
    if value is not None and agent is None:
        raise ValidationFailed(f"agent {value!r} is no longer active", field="assignee")
    return TicketPatch(assignee_id=agent)


async def _notify(app: App, rule: Rule, action: Notify, ticket: Ticket, key: str) -> None:
    assignee_email = None
    if "assignee" in action.to and ticket.assignee_id is not None:
        assignee_email = await app.db.fetchval(
            "SELECT email FROM app_user WHERE id = {}", ticket.assignee_id
        )
    job = notify_job(rule, action, ticket, key, assignee_email)
    if job is not None:
        await app.jobs.enqueue("notify", job[0], key=job[1])


def notify_job(
    rule: Rule, action: Notify, ticket: Ticket, key: str, assignee_email: str | None
) -> tuple[dict[str, Any], str] | None:
    """The ``notify`` job (payload, idempotency key) of a rule's ``notify`` action on
    ``ticket``, as the ticket is when the action runs; None when nobody is left to tell.
    ``key`` names the action's firing (rule, event, place in the rule)."""
    recipients: list[str] = []
    for target in action.to:
        if target == "requester":
            address = ticket.requester.email
        elif target == "assignee":
            address = assignee_email if ticket.assignee_id is not None else None
        else:
            address = target
        if address and address not in recipients:
            recipients.append(address)
    if not recipients:
        return None
    agent = rule_principal(rule)
    notification = Notification(
        kind="automation",
        ticket_id=ticket.id,
        recipients=recipients,
        subject=render_body(action.subject, ticket, agent),
        body=render_body(action.body, ticket, agent),
        idempotency_key=key,
        data={"rule": rule.name, "rule_id": rule.id},
    )
    return {"notification": msgspec.to_builtins(notification)}, f"{key}:notify"


async def deliver_webhook(app: App, job: JobRecord) -> None:
    """Job ``automation_webhook``: POST the body; a failure (network, non-2xx) raises, so
    the job queue retries with back-off."""
    payload: dict[str, Any] = job.payload
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            payload["url"],
            json=payload["body"],
            headers={"Idempotency-Key": f"ticketcore-job-{job.id}"},
        )
        response.raise_for_status()
    job.payload["status_code"] = response.status_code

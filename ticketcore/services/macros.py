"""Macros: canned responses that an agent applies in one step (reply, field changes, status).

A macro is applied in one transaction: the reply, the field changes and the transition all
happen, or none does (an invalid transition from the ticket's status rolls back the reply).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import jinja2
import msgspec
from jinja2.sandbox import SandboxedEnvironment

from ticketcore.domain.commands import NewEntry, NewMacro, TicketPatch, TransitionRequest
from ticketcore.domain.enums import Priority
from ticketcore.domain.lifecycle import TRANSITIONS
from ticketcore.domain.models import Principal, Ticket
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.services import permissions
from ticketcore.services.history import EventDraft, record_events
from ticketcore.services.rows import dump_json, load_json

if TYPE_CHECKING:
    from ticketcore.app import App

# Sandboxed: macro text is written by admins but rendered with ticket data; no attribute
# access beyond the plain values we pass, and a misspelled placeholder is an error.
_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class MacroInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A stored macro."""

    id: int
    name: str
    body: str
    internal: bool
    set_priority: Priority | None
    set_category: str | None
    add_tags: list[str]
    transition: str | None


def _context(ticket: Ticket, agent: Principal) -> dict[str, Any]:
    return {
        "ticket": {
            "number": ticket.number,
            "id": ticket.id,
            "subject": ticket.subject,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
        },
        "requester": {"name": ticket.requester.name, "email": ticket.requester.email or ""},
        "agent": {"name": agent.name, "email": agent.email},
    }


def render_body(body: str, ticket: Ticket, agent: Principal) -> str:
    """The macro's text with its placeholders filled; a clear error for a bad one."""
    try:
        return _ENV.from_string(body).render(_context(ticket, agent))
    except jinja2.TemplateError as exc:
        raise ValidationFailed(f"macro text cannot be rendered: {exc}", field="body") from exc


class MacroService:
    """Create, list and apply macros."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def create(self, actor: Principal, cmd: NewMacro) -> MacroInfo:
        """Store a macro (admins); its text and transition are checked now, not at use."""
        permissions.ensure_admin(actor, "creating macros")
        _check(cmd)
        async with self.db.transaction():
            if await self.db.fetch("SELECT id FROM macro WHERE name = {}", cmd.name):
                raise ValidationFailed(f"a macro named {cmd.name!r} exists", field="name")
            rows = await self.db.fetch(
                "INSERT INTO macro (name, body, internal, set_priority, set_category, add_tags, "
                "transition, active, created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) "
                "RETURNING id",
                cmd.name,
                cmd.body,
                cmd.internal,
                cmd.set_priority.value if cmd.set_priority else None,
                cmd.set_category,
                dump_json(cmd.add_tags),
                cmd.transition,
                True,
                self.app.clock.now(),
            )
        return await self.get(int(rows[0]["id"]))

    async def get(self, macro_id: int) -> MacroInfo:
        """One active macro."""
        rows = await self.db.fetch(
            "SELECT * FROM macro WHERE id = {} AND active = {}", macro_id, True
        )
        if not rows:
            raise NotFound(f"macro {macro_id} not found", field="macro_id")
        return _macro(rows[0])

    async def list(self, actor: Principal) -> list[MacroInfo]:
        """Active macros by name (staff)."""
        permissions.ensure_staff(actor, "listing macros")
        rows = await self.db.fetch("SELECT * FROM macro WHERE active = {} ORDER BY name", True)
        return [_macro(r) for r in rows]

    async def list_all(self, actor: Principal) -> builtins.list[tuple[MacroInfo, bool]]:
        """Every macro by name with whether it is active (admins)."""
        permissions.ensure_admin(actor, "managing macros")
        rows = await self.db.fetch("SELECT * FROM macro ORDER BY name")
        return [(_macro(r), bool(r["active"])) for r in rows]

    async def get_any(self, actor: Principal, macro_id: int) -> tuple[MacroInfo, bool]:
        """One macro, active or not, and whether it is active (admins)."""
        permissions.ensure_admin(actor, "managing macros")
        rows = await self.db.fetch("SELECT * FROM macro WHERE id = {}", macro_id)
        if not rows:
            raise NotFound(f"macro {macro_id} not found", field="macro_id")
        return _macro(rows[0]), bool(rows[0]["active"])

    async def update(self, actor: Principal, macro_id: int, cmd: NewMacro) -> MacroInfo:
        """Replace a macro's name, text and changes (admins), checked as at creation."""
        await self.get_any(actor, macro_id)
        _check(cmd)
        async with self.db.transaction():
            if await self.db.fetch(
                "SELECT id FROM macro WHERE name = {} AND id <> {}", cmd.name, macro_id
            ):
                raise ValidationFailed(f"a macro named {cmd.name!r} exists", field="name")
            await self.db.fetch(
                "UPDATE macro SET name = {}, body = {}, internal = {}, set_priority = {}, "
                "set_category = {}, add_tags = {}, transition = {} WHERE id = {}",
                cmd.name,
                cmd.body,
                cmd.internal,
                cmd.set_priority.value if cmd.set_priority else None,
                cmd.set_category,
                dump_json(cmd.add_tags),
                cmd.transition,
                macro_id,
            )
        return (await self.get_any(actor, macro_id))[0]

    async def set_active(self, actor: Principal, macro_id: int, active: bool) -> None:
        """Deactivate (agents no longer see it) or reactivate a macro (admins)."""
        await self.get_any(actor, macro_id)
        async with self.db.transaction():
            await self.db.fetch("UPDATE macro SET active = {} WHERE id = {}", active, macro_id)

    async def apply(self, actor: Principal, macro_id: int, ticket_id: int) -> Ticket:
        """Reply (or note), change fields and move the ticket, all or nothing."""
        permissions.ensure_staff(actor, "applying macros")
        macro = await self.get(macro_id)
        tickets = self.app.tickets
        async with self.db.transaction():
            ticket = await tickets.get(actor, ticket_id)
            text = render_body(macro.body, ticket, actor)
            if text.strip():
                await tickets.add_entry(
                    actor, ticket_id, NewEntry(body=text), internal=macro.internal
                )
            changes: dict[str, Any] = {}
            if macro.set_priority is not None:
                changes["priority"] = macro.set_priority
            if macro.set_category is not None:
                changes["category"] = macro.set_category
            if macro.add_tags:
                current_tags = (await tickets.snapshot(ticket_id)).tags
                changes["tags"] = [*current_tags, *macro.add_tags]
            if changes:
                current = await tickets.snapshot(ticket_id)
                await tickets.update(
                    actor, ticket_id, TicketPatch(**changes), version=current.version
                )
            if macro.transition is not None:
                await tickets.transition(
                    actor, ticket_id, TransitionRequest(transition=macro.transition)
                )
            await record_events(
                self.app,
                ticket_id,
                actor.actor,
                [EventDraft(kind="macro_applied", data={"macro_id": macro.id, "name": macro.name})],
                self.app.clock.now(),
            )
        self.app.jobs.wake()
        return await tickets.snapshot(ticket_id)


def _check(cmd: NewMacro) -> None:
    """Refuse a macro whose text or transition would fail when applied."""
    try:
        _ENV.parse(cmd.body)
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationFailed(f"invalid placeholder syntax: {exc}", field="body") from exc
    if cmd.transition is not None and cmd.transition not in TRANSITIONS:
        raise ValidationFailed(
            f"unknown transition {cmd.transition!r}; known: {', '.join(TRANSITIONS)}",
            field="transition",
        )


def _macro(row: dict[str, Any]) -> MacroInfo:
    return MacroInfo(
        id=row["id"],
        name=row["name"],
        body=row["body"] or "",
        internal=bool(row["internal"]),
        set_priority=Priority(row["set_priority"]) if row["set_priority"] else None,
        set_category=row["set_category"],
        add_tags=load_json(row["add_tags"]) or [],
        transition=row["transition"],
    )

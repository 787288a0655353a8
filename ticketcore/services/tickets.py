"""Ticket commands and queries: create, change, converse, transition, list, history.

Every command runs in one transaction that writes the change, its history events and its
outbox jobs together: invalid input raises before anything is written, and a failure
part-way rolls everything back.
"""

from __future__ import annotations

import asyncio
import builtins  # in TicketService, `list` names the method: annotations use builtins.list
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.db.database import is_unique_violation
from ticketcore.db.search_index import MIN_INDEXED_CHARS, fts_phrase
from ticketcore.domain.commands import (
    LinkRequest,
    NewEntry,
    NewTicket,
    TicketFilters,
    TicketPatch,
    TransitionRequest,
)
from ticketcore.domain.enums import EntryKind, LinkKind, Priority, Status
from ticketcore.domain.lifecycle import resolve_transition
from ticketcore.domain.models import (
    Actor,
    AttachmentInfo,
    Contact,
    Entry,
    Principal,
    Ticket,
    TicketEvent,
)
from ticketcore.domain.tags import clean_tags
from ticketcore.errors import (
    DuplicateMessage,
    InvalidTransition,
    NotFound,
    TransitionVetoed,
    ValidationFailed,
    VersionConflict,
)
from ticketcore.services import permissions, sla
from ticketcore.services.attachments import AttachmentStore, StoredFile
from ticketcore.services.cursors import decode_cursor, encode_cursor
from ticketcore.services.directory import normalise_email
from ticketcore.services.history import EventDraft, record_events
from ticketcore.services.html import html_to_text, sanitize_html
from ticketcore.services.routing import lock_routing, record_assignment
from ticketcore.services.rows import (
    TICKET_COLUMNS,
    TICKET_FROM,
    attachment_from_row,
    dump_json,
    entry_from_row,
    event_from_row,
    link_from_row,
    load_json,
    ticket_from_row,
)
from ticketcore.services.ticket_writer import PendingTicket, TicketBatchWriter
from ticketcore.services.triage import triage

if TYPE_CHECKING:
    from ticketcore.app import App

MAX_PAGE = 100
PUBLIC_ENTRY_KINDS = (EntryKind.MESSAGE_IN.value, EntryKind.MESSAGE_OUT.value)
_PATCH_FIELDS = {
    "subject": "subject",
    "priority": "priority",
    "category": "category",
    "team_id": "team",
    "assignee_id": "assignee",
    "tags": "tags",
    "custom_fields": "custom_fields",
}

#: Fields an SLA policy may choose targets by: changing one recomputes the due times.
_SLA_FIELDS = frozenset({"priority", "category", "custom_fields"})


class Page(msgspec.Struct, kw_only=True):
    """One page of a keyset-paginated list."""

    items: list[Ticket]
    next_cursor: str | None


class TicketService:
    """The ticket use-cases of one application."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db
        self.store = AttachmentStore(app.settings.storage_dir, app.settings.limits)
        self.writer = TicketBatchWriter(app)

    # --- reading ----------------------------------------------------------------------------

    async def _row(
        self, ticket_id: int, *, lock: bool = False, with_links: bool = False
    ) -> dict[str, Any]:
        suffix = " FOR UPDATE OF t" if lock and not self.db.is_sqlite else ""
        links = f", {self._links_column} AS links_json" if with_links else ""
        rows = await self.db.fetch(
            f"SELECT {TICKET_COLUMNS}, t.description{links} {TICKET_FROM} "
            f"WHERE t.id = {{}}{suffix}",
            ticket_id,
        )
        if not rows:
            raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")
        return rows[0]

    @property
    def _links_column(self) -> str:
        """The ticket's links as a JSON array of [kind, other], in the same query as the
        ticket: one round trip for a detail view instead of two."""
        if self.db.is_sqlite:
            return (
                "(SELECT json_group_array(json_array(l.kind, l.other)) FROM "
                "(SELECT kind, other FROM ticket_link WHERE ticket = t.id ORDER BY id) l)"
            )
        return (
            "(SELECT coalesce(json_agg(json_build_array(l.kind, l.other) ORDER BY l.id), "
            "'[]') FROM ticket_link l WHERE l.ticket = t.id)::text"
        )

    async def _snapshot_from_row(self, row: dict[str, Any]) -> Ticket:
        if row.get("links_json") is not None:
            pairs = load_json(row["links_json"])
            links = [link_from_row({"kind": kind, "other": other}) for kind, other in pairs]
        else:
            rows = await self.db.fetch(
                "SELECT kind, other FROM ticket_link WHERE ticket = {} ORDER BY id", row["id"]
            )
            links = [link_from_row(r) for r in rows]
        return ticket_from_row(row, links, description=row.get("description") or "")

    async def snapshot(self, ticket_id: int) -> Ticket:
        """The current state of a ticket, without permission checks (for plugins, workers)."""
        return await self._snapshot_from_row(await self._row(ticket_id, with_links=True))

    async def get(self, viewer: Principal, ticket_id: int) -> Ticket:
        """A ticket as ``viewer`` may see it."""
        row = await self._row(ticket_id, with_links=True)
        permissions.ensure_can_view(viewer, ticket_id, row["requester"])
        return await self._snapshot_from_row(row)

    async def list(
        self, viewer: Principal, filters: TicketFilters, cursor: str | None = None, limit: int = 25
    ) -> Page:
        """Newest first, keyset-paginated; a customer sees only their own tickets."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        where: list[str] = []
        args: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            where.append(clause)
            args.extend(values)

        if not viewer.is_staff:
            add("t.requester = {}", viewer.contact_id if viewer.contact_id is not None else -1)
        if filters.status is not None:
            try:
                add("t.status = {}", Status(filters.status).value)
            except ValueError as exc:
                raise ValidationFailed(
                    f"unknown status {filters.status!r}; one of "
                    f"{', '.join(s.value for s in Status)}",
                    field="status",
                ) from exc
        if filters.priority is not None:
            add("t.priority = {}", filters.priority.value)
        if filters.team_id is not None:
            add("t.team = {}", filters.team_id)
        if filters.assignee_id is not None:
            add("t.assignee = {}", filters.assignee_id)
        if filters.unassigned:
            add("t.assignee IS NULL")
        if filters.requester_id is not None:
            add("t.requester = {}", filters.requester_id)
        if filters.category is not None:
            add("t.category = {}", filters.category)
        if filters.tag is not None:
            add(
                "EXISTS (SELECT 1 FROM ticket_tag g WHERE g.ticket = t.id AND g.tag = {})",
                filters.tag.strip().lower(),
            )
        if filters.q and self.db.is_sqlite and len(filters.q) >= MIN_INDEXED_CHARS:
            # The trigram FTS index: a case-insensitive substring match without a scan.
            add(
                "t.id IN (SELECT rowid FROM ticket_subject_fts WHERE ticket_subject_fts MATCH {})",
                fts_phrase(filters.q),
            )
        elif filters.q:
            # PostgreSQL's trigram index serves ILIKE; needles under three characters scan.
            like = "ILIKE" if not self.db.is_sqlite else "LIKE"
            pattern = (
                "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            add(f"t.subject {like} {{}} ESCAPE '\\'", pattern)
        if cursor:
            add("t.id < {}", decode_cursor("t", cursor))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch(
            f"SELECT {TICKET_COLUMNS} {TICKET_FROM} {clause} ORDER BY t.id DESC LIMIT {{}}",
            *args,
            limit + 1,
            offload=bool(filters.q),  # a text search may scan: keep it off the event loop
        )
        items = [ticket_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items=items, next_cursor=encode_cursor("t", items[-1].id) if more else None)

    async def entries(self, viewer: Principal, ticket_id: int) -> builtins.list[Entry]:
        """The conversation, oldest first; customers never get internal or system notes."""
        row = await self._row(ticket_id)
        permissions.ensure_can_view(viewer, ticket_id, row["requester"])
        kinds = "" if viewer.is_staff else " AND kind IN ('message_in', 'message_out')"
        rows = await self.db.fetch(
            f"SELECT * FROM entry WHERE ticket = {{}}{kinds} ORDER BY id", ticket_id
        )
        files = await self.db.fetch(
            "SELECT * FROM attachment WHERE ticket = {} ORDER BY id", ticket_id
        )
        by_entry: dict[int, list[Any]] = {}
        for f in files:
            by_entry.setdefault(f["entry"], []).append(attachment_from_row(f))
        return [entry_from_row(r, by_entry.get(r["id"], [])) for r in rows]

    async def entry(self, entry_id: int) -> Entry:
        """One entry by id, without permission checks (for workers)."""
        rows = await self.db.fetch("SELECT * FROM entry WHERE id = {}", entry_id)
        if not rows:
            raise NotFound(f"entry {entry_id} not found")
        files = await self.db.fetch(
            "SELECT * FROM attachment WHERE entry = {} ORDER BY id", entry_id
        )
        return entry_from_row(rows[0], [attachment_from_row(f) for f in files])

    async def events(self, viewer: Principal, ticket_id: int) -> builtins.list[TicketEvent]:
        """The history, oldest first. Customers do not see the internal history."""
        row = await self._row(ticket_id)
        permissions.ensure_can_view(viewer, ticket_id, row["requester"])
        permissions.ensure_staff(viewer, "reading a ticket's history")
        rows = await self.db.fetch(
            "SELECT * FROM ticket_event WHERE ticket = {} ORDER BY id", ticket_id
        )
        return [event_from_row(r) for r in rows]

    async def event(self, event_id: int) -> TicketEvent:
        """One event by id (for workers)."""
        rows = await self.db.fetch("SELECT * FROM ticket_event WHERE id = {}", event_id)
        if not rows:
            raise NotFound(f"event {event_id} not found")
        return event_from_row(rows[0])

    async def attachment(
        self, viewer: Principal, attachment_id: int
    ) -> tuple[AttachmentInfo, bytes]:
        """An attachment's metadata and bytes, if ``viewer`` may see the entry it belongs to
        (a customer never gets the file of an internal note)."""
        rows = await self.db.fetch(
            "SELECT a.*, e.kind AS entry_kind, t.requester FROM attachment a "
            "JOIN entry e ON e.id = a.entry JOIN ticket t ON t.id = a.ticket WHERE a.id = {}",
            attachment_id,
        )
        missing = NotFound(f"attachment {attachment_id} not found", field="attachment_id")
        if not rows:
            raise missing
        row = rows[0]
        try:
            permissions.ensure_can_view(viewer, row["ticket"], row["requester"])
        except NotFound:
            raise missing from None
        if not viewer.is_staff and row["entry_kind"] not in PUBLIC_ENTRY_KINDS:
            raise missing
        info = attachment_from_row(row)
        return info, self.store.read(info.sha256)

    # --- helpers ----------------------------------------------------------------------------

    def _bodies(self, body: str, body_html: str | None, field: str) -> tuple[str, str | None]:
        limit = self.app.settings.limits.max_body_chars
        html = sanitize_html(body_html) if body_html else None
        text = body if body.strip() or not html else html_to_text(html)
        if len(text) > limit or (html and len(html) > limit):
            raise ValidationFailed(f"the body is longer than {limit} characters", field=field)
        return text, html

    async def _resolve_requester(
        self,
        actor: Principal,
        cmd: NewTicket,
        now: datetime,
    ) -> Contact:
        if not actor.is_staff:
            if actor.contact_id is None:
                raise ValidationFailed("this customer account has no contact", field="requester")
            return await self.app.directory.contact(actor.contact_id)
        req = cmd.requester
        if req is None:
            raise ValidationFailed("give the requester: an id or an e-mail", field="requester")
        if req.id is not None:
            return await self.app.directory.contact(req.id, field="requester.id")
        if not req.email:
            raise ValidationFailed("give the requester: an id or an e-mail", field="requester")
        address = normalise_email(req.email, "requester.email")
        if self._triage_needs_requester():
            found = await self.app.directory.find_contact(address, field="requester.email")
            if found:
                return found
        # Unresolved (id 0): the batch writer finds or creates it inside the transaction,
        # for the whole batch in one query.
        name = (req.name or "").strip() or address.split("@", 1)[0]
        return Contact(id=0, name=name[:200], email=address, phone=req.phone)

    def _triage_needs_requester(self) -> bool:
        """Triage and SLA plugins may look at the requester (VIP, organisation): resolve it
        before them."""
        hooks = self.app.hooks
        return bool(
            hooks.implementers("classify_ticket")
            or hooks.implementers("enrich_ticket")
            or hooks.implementers("compute_sla")
        )

    async def _check_refs(
        self, team_id: int | None, assignee_id: int | None, prefix: str = ""
    ) -> None:
        if team_id is not None and not await self.db.fetch(
            "SELECT id FROM team WHERE id = {}", team_id
        ):
            raise ValidationFailed(f"team {team_id} does not exist", field=f"{prefix}team_id")
        if assignee_id is not None and not await self.db.fetch(
            "SELECT id FROM app_user WHERE id = {} AND active = {} AND role IN ('agent', 'admin')",
            assignee_id,
            True,
        ):
            raise ValidationFailed(
                f"user {assignee_id} is not an active agent", field=f"{prefix}assignee_id"
            )

    async def _insert_entry(
        self,
        ticket_id: int,
        kind: EntryKind,
        author: Actor,
        text: str,
        html: str | None,
        files: builtins.list[Any],
        now: datetime,
        message_id: str | None,
    ) -> int:
        rows = await self.db.fetch(
            "INSERT INTO entry (ticket, kind, author_kind, author_id, author_name, body_text, "
            "body_html, message_id, created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "RETURNING id",
            ticket_id,
            kind.value,
            author.kind,
            author.id,
            author.name,
            text,
            html,
            message_id,
            now,
        )
        entry_id: int = rows[0]["id"]
        for f in files:
            await self.db.fetch(
                "INSERT INTO attachment (entry, ticket, filename, content_type, size, sha256) "
                "VALUES ({}, {}, {}, {}, {}, {})",
                entry_id,
                ticket_id,
                f.filename,
                f.content_type,
                f.size,
                f.sha256,
            )
        return entry_id

    async def _set_tags(self, ticket_id: int, tags: builtins.list[str]) -> None:
        await self.db.fetch("DELETE FROM ticket_tag WHERE ticket = {}", ticket_id)
        if tags:
            values = ", ".join(["({}, {})"] * len(tags))
            args = [v for tag in tags for v in (ticket_id, tag)]
            await self.db.fetch(f"INSERT INTO ticket_tag (ticket, tag) VALUES {values}", *args)

    def _store_files(self, uploads: builtins.list[Any], field: str) -> builtins.list[Any]:
        decoded = self.store.decode_all(uploads, field)
        return [self.store.store(u.filename, u.content_type, data) for u, data in decoded]

    # --- commands ---------------------------------------------------------------------------

    async def create(
        self, actor: Principal, cmd: NewTicket, *, files: Sequence[StoredFile] = ()
    ) -> Ticket:
        """Open a ticket: validate, triage, route, and write it with its first message.

        ``files`` are attachments a channel already stored (e.g. parts of an inbound mail),
        added to those uploaded in ``cmd``. A ``cmd.message_id`` already on record raises
        DuplicateMessage: the same mail delivered twice never opens two tickets.
        """
        limits = self.app.settings.limits
        subject = cmd.subject.strip()
        if not subject:
            raise ValidationFailed("the subject is empty", field="subject")
        if len(subject) > limits.max_subject_chars:
            raise ValidationFailed(
                f"the subject is longer than {limits.max_subject_chars} characters", field="subject"
            )
        text, html = self._bodies(cmd.body, cmd.body_html, "body")
        tags = clean_tags(cmd.tags)
        if not actor.is_staff and (cmd.team_id or cmd.assignee_id):
            raise ValidationFailed(
                "customers cannot choose a team or an agent",
                field="team_id" if cmd.team_id else "assignee_id",
            )
        stored = [*self._store_files(cmd.attachments, "attachments"), *files]
        now = self.app.clock.now()
        requester = await self._resolve_requester(actor, cmd, now)
        draft = Ticket(
            id=0,
            key=str(uuid.uuid4()),
            subject=subject,
            status=Status.NEW,
            priority=cmd.priority,
            category=cmd.category,
            channel=cmd.channel,
            requester=requester,
            team_id=cmd.team_id,
            assignee_id=cmd.assignee_id,
            tags=tags,
            custom_fields=dict(cmd.custom_fields),
            version=1,
            created_at=now,
            updated_at=now,
            description=text,
        )
        created = {
            "subject": subject,
            "priority": cmd.priority.value,
            "channel": cmd.channel,
            "team_id": cmd.team_id,
            "assignee_id": cmd.assignee_id,
            "category": cmd.category,
        }
        # Triage may do I/O (CRM lookups): it runs before the transaction opens.
        draft, triage_events = await triage(self.app, draft)
        # The SLA policy is pure: due times are computed here too, outside the batch.
        draft, sla_plan, sla_events = sla.on_create(self.app, draft, now)
        await self._check_refs(cmd.team_id, cmd.assignee_id)
        pending = PendingTicket(
            actor=actor,
            draft=draft,
            body_html=html,
            files=stored,
            message_id=cmd.message_id,
            created=created,
            events=[*triage_events, *sla_events],
            sla=sla_plan,
            future=asyncio.get_running_loop().create_future(),
        )
        try:
            return await self.writer.write(pending)
        except Exception as exc:
            if cmd.message_id and is_unique_violation(exc):
                raise _duplicate(cmd.message_id) from exc
            raise

    async def update(
        self, actor: Principal, ticket_id: int, patch: TicketPatch, version: int | None = None
    ) -> Ticket:
        """Change fields with optimistic concurrency: a stale ``version`` gets 409."""
        permissions.ensure_staff(actor, "changing a ticket")
        expected = version if version is not None else patch.version
        if expected is None:
            raise ValidationFailed(
                "send the version you read (field 'version' or an If-Match header)", field="version"
            )
        values: dict[str, Any] = {}
        for name in _PATCH_FIELDS:
            value = getattr(patch, name)
            if value is not msgspec.UNSET:
                values[name] = value
        if "subject" in values:
            values["subject"] = values["subject"].strip()
            if not values["subject"]:
                raise ValidationFailed("the subject is empty", field="subject")
        if "tags" in values:
            values["tags"] = clean_tags(values["tags"])
        now = self.app.clock.now()
        async with self.db.transaction():
            row = await self._row(ticket_id, lock=True)
            if row["version"] != expected:
                raise VersionConflict(
                    f"ticket {ticket_id} changed since version {expected}; it is now at "
                    f"version {row['version']}: reload and retry",
                    field="version",
                    current_version=row["version"],
                )
            await self._check_refs(values.get("team_id"), values.get("assignee_id"))
            current = ticket_from_row(row)
            changes: dict[str, tuple[Any, Any]] = {}
            for name, new in values.items():
                old = getattr(current, name)
                if isinstance(old, Priority):
                    old = old.value
                if isinstance(new, Priority):
                    new = new.value
                if name == "custom_fields":
                    new = {k: v for k, v in {**old, **new}.items() if v is not None}
                if old != new:
                    changes[name] = (old, new)
            if not changes:
                return await self._snapshot_from_row(row)
            sets = ", ".join(f"{_PATCH_FIELDS[name]} = {{}}" for name in changes)
            args = [
                dump_json(new) if name in ("tags", "custom_fields") else new
                for name, (_, new) in changes.items()
            ]
            if "assignee_id" in changes:
                # Before the update moves agent_load rows (triggers), as routing takes them.
                await lock_routing(self.app)
            done = await self.db.fetch(
                f"UPDATE ticket SET {sets}, version = version + 1, updated_at = {{}} "
                "WHERE id = {} AND version = {} RETURNING version",
                *args,
                now,
                ticket_id,
                expected,
            )
            if not done:  # lost a race after our read (SQLite never; PostgreSQL guards)
                raise VersionConflict(
                    f"ticket {ticket_id} changed meanwhile: reload and retry", field="version"
                )
            if "tags" in changes:
                await self._set_tags(ticket_id, changes["tags"][1])
            if "assignee_id" in changes and changes["assignee_id"][1] is not None:
                team = changes.get("team_id", (None, current.team_id))[1]
                if team is not None:
                    await record_assignment(self.app, team, changes["assignee_id"][1], now)
            updated = [EventDraft(kind="updated", changes=changes)]
            if _SLA_FIELDS.intersection(changes):  # the policy may choose other targets
                updated += await sla.after_change(self.app, ticket_id, now)
            await record_events(self.app, ticket_id, actor.actor, updated, now)
        self.app.jobs.wake()
        return await self.snapshot(ticket_id)

    async def _apply_status(
        self,
        ticket_id: int,
        row: dict[str, Any],
        target: Status,
        transition: str,
        now: datetime,
        extra: dict[str, Any],
    ) -> EventDraft:
        """Write a status change (inside a transaction) and return its history event."""
        sets = ["status = {}"]
        args: list[Any] = [target.value]
        changes: dict[str, tuple[Any, Any]] = {"status": (row["status"], target.value)}
        if target is Status.RESOLVED:
            sets.append("resolved_at = {}")
            args.append(now)
        elif target is Status.CLOSED:
            sets.append("closed_at = {}")
            args.append(now)
        elif transition == "reopen":
            sets += ["resolved_at = NULL", "closed_at = NULL"]
        args += [now, ticket_id]
        await self.db.fetch(
            f"UPDATE ticket SET {', '.join(sets)}, version = version + 1, updated_at = {{}} "
            "WHERE id = {}",
            *args,
        )
        return EventDraft(
            kind="status_changed", changes=changes, data={"transition": transition, **extra}
        )

    async def transition(
        self, actor: Principal, ticket_id: int, req: TransitionRequest, version: int | None = None
    ) -> Ticket:
        """Move a ticket through the state machine; plugins may veto inside the transaction."""
        expected = version if version is not None else req.version
        permissions.ensure_customer_transition(actor, req.transition)
        now = self.app.clock.now()
        async with self.db.transaction():
            row = await self._row(ticket_id, lock=True)
            permissions.ensure_can_view(actor, ticket_id, row["requester"])
            if expected is not None and row["version"] != expected:
                raise VersionConflict(
                    f"ticket {ticket_id} changed since version {expected}; it is now at "
                    f"version {row['version']}",
                    field="version",
                    current_version=row["version"],
                )
            transition = resolve_transition(req.transition, Status(row["status"]))
            snapshot = ticket_from_row(row)
            for plugin, reason in self.app.hooks.iter_results(
                "ticket_pre_transition",
                ticket=snapshot,
                transition=transition.name,
                actor=actor.actor,
            ):
                if reason:
                    raise TransitionVetoed(
                        f"{plugin} refused {transition.name!r}: {reason}",
                        field="transition",
                        plugin=plugin,
                    )
            extra = {"comment": req.comment} if req.comment else {}
            event = await self._apply_status(
                ticket_id, row, transition.target, transition.name, now, extra
            )
            events = [event, *await sla.after_change(self.app, ticket_id, now)]
            await record_events(self.app, ticket_id, actor.actor, events, now)
        self.app.jobs.wake()
        return await self.snapshot(ticket_id)

    async def add_entry(
        self,
        actor: Principal,
        ticket_id: int,
        cmd: NewEntry,
        *,
        internal: bool,
        files: Sequence[StoredFile] = (),
        from_contact: Contact | None = None,
    ) -> Entry:
        """Add a public message or an internal note, with the status moves a reply implies:
        an agent's first public reply opens a new ticket and records the first response; a
        customer's reply brings back a ticket that waited on them or was resolved.

        A channel that has verified who wrote in (e.g. a mail threaded on the ticket) passes
        ``from_contact``: the entry is then an inbound message by that contact, recorded
        with ``actor`` (the channel) as the one who added it. ``files`` are attachments the
        channel already stored. A ``cmd.message_id`` already on record raises
        DuplicateMessage.
        """
        if internal:
            permissions.ensure_staff(actor, "writing an internal note")
        if from_contact is not None:
            permissions.ensure_staff(actor, "adding a message on behalf of a contact")
        text, html = self._bodies(cmd.body, cmd.body_html, "body")
        if not text.strip() and not cmd.attachments and not files:
            raise ValidationFailed("the message is empty", field="body")
        stored = [*self._store_files(cmd.attachments, "attachments"), *files]
        now = self.app.clock.now()
        try:
            return await self._add_entry(
                actor, ticket_id, cmd, internal, stored, from_contact, text, html, now
            )
        except Exception as exc:
            if cmd.message_id and is_unique_violation(exc):
                raise _duplicate(cmd.message_id) from exc
            raise

    async def _add_entry(
        self,
        actor: Principal,
        ticket_id: int,
        cmd: NewEntry,
        internal: bool,
        files: builtins.list[StoredFile],
        from_contact: Contact | None,
        text: str,
        html: str | None,
        now: datetime,
    ) -> Entry:
        author = actor.actor
        async with self.db.transaction():
            row = await self._row(ticket_id, lock=True)
            permissions.ensure_can_view(actor, ticket_id, row["requester"])
            status = Status(row["status"])
            if internal:
                kind = EntryKind.NOTE
            elif from_contact is not None:
                kind = EntryKind.MESSAGE_IN
                author = Actor(kind="contact", id=from_contact.id, name=from_contact.name)
                if status is Status.CLOSED:
                    raise InvalidTransition(
                        f"ticket {ticket_id} is closed; open a new ticket instead",
                        field="ticket_id",
                    )
            elif actor.is_staff:
                kind = EntryKind.MESSAGE_OUT
            else:
                kind = EntryKind.MESSAGE_IN
                if status is Status.CLOSED:
                    raise InvalidTransition(
                        f"ticket {ticket_id} is closed; open a new ticket instead",
                        field="ticket_id",
                    )
            entry_id = await self._insert_entry(
                ticket_id, kind, author, text, html, files, now, cmd.message_id
            )
            events = [
                EventDraft(
                    kind="note_added" if internal else "message_added",
                    data={"entry_id": entry_id, "entry_kind": kind.value},
                )
            ]
            if kind is EntryKind.MESSAGE_OUT:
                if row["first_response_at"] is None:
                    await self.db.fetch(
                        "UPDATE ticket SET first_response_at = {} WHERE id = {}", now, ticket_id
                    )
                    events.append(
                        EventDraft(
                            kind="first_response",
                            changes={"first_response_at": (None, now.isoformat())},
                        )
                    )
                if status is Status.NEW:
                    events.append(
                        await self._apply_status(
                            ticket_id, row, Status.OPEN, "open", now, {"cause": "agent reply"}
                        )
                    )
            elif kind is EntryKind.MESSAGE_IN and status in (
                Status.PENDING_CUSTOMER,
                Status.RESOLVED,
            ):
                name = "reopen" if status is Status.RESOLVED else "open"
                events.append(
                    await self._apply_status(
                        ticket_id, row, Status.OPEN, name, now, {"cause": "customer reply"}
                    )
                )
            await self.db.fetch("UPDATE ticket SET updated_at = {} WHERE id = {}", now, ticket_id)
            if kind is not EntryKind.NOTE or len(events) > 1:
                reply = {EntryKind.MESSAGE_OUT: "agent", EntryKind.MESSAGE_IN: "customer"}
                events += await sla.after_change(self.app, ticket_id, now, reply=reply.get(kind))
            await record_events(self.app, ticket_id, actor.actor, events, now)
            if kind is EntryKind.MESSAGE_OUT and self.app.hooks.implementers("deliver_reply"):
                await self.app.jobs.enqueue(
                    "deliver_reply", {"entry_id": entry_id}, key=f"deliver_reply:{entry_id}"
                )
        self.app.jobs.wake()
        return await self.entry(entry_id)

    async def add_system_entry(
        self,
        ticket_id: int,
        text: str,
        *,
        actor: Actor,
        message_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Entry:
        """Record something the helpdesk observed on a ticket (e.g. a reply that could not be
        delivered) as a system entry, without touching its status. Staff see it; customers
        never do. A ``message_id`` already on record raises DuplicateMessage."""
        now = self.app.clock.now()
        try:
            async with self.db.transaction():
                await self._row(ticket_id, lock=True)
                entry_id = await self._insert_entry(
                    ticket_id, EntryKind.SYSTEM, actor, text, None, [], now, message_id
                )
                event = EventDraft(
                    kind="system_note_added",
                    data={"entry_id": entry_id, **(data or {})},
                )
                await record_events(self.app, ticket_id, actor, [event], now)
        except Exception as exc:
            if message_id and is_unique_violation(exc):
                raise _duplicate(message_id) from exc
            raise
        self.app.jobs.wake()
        return await self.entry(entry_id)

    async def link(self, actor: Principal, ticket_id: int, req: LinkRequest) -> Ticket:
        """Relate two tickets; merging also closes this one."""
        permissions.ensure_staff(actor, "linking tickets")
        if req.ticket_id == ticket_id:
            raise ValidationFailed("a ticket cannot be linked to itself", field="ticket_id")
        now = self.app.clock.now()
        async with self.db.transaction():
            row = await self._row(ticket_id, lock=True)
            await self._row(req.ticket_id)
            existing = await self.db.fetch(
                "SELECT id FROM ticket_link WHERE ticket = {} AND other = {} AND kind = {}",
                ticket_id,
                req.ticket_id,
                req.kind.value,
            )
            if existing:
                return await self._snapshot_from_row(row)
            await self.db.fetch(
                "INSERT INTO ticket_link (ticket, other, kind, created_at) VALUES ({}, {}, {}, {})",
                ticket_id,
                req.ticket_id,
                req.kind.value,
                now,
            )
            events = [
                EventDraft(kind="linked", data={"kind": req.kind.value, "ticket_id": req.ticket_id})
            ]
            if req.kind is LinkKind.MERGED_INTO and row["status"] != Status.CLOSED.value:
                events.append(
                    await self._apply_status(
                        ticket_id, row, Status.CLOSED, "close", now, {"cause": "merged"}
                    )
                )
                events += await sla.after_change(self.app, ticket_id, now)
            await record_events(self.app, ticket_id, actor.actor, events, now)
        self.app.jobs.wake()
        return await self.snapshot(ticket_id)


def _duplicate(message_id: str) -> DuplicateMessage:
    return DuplicateMessage(
        f"a message with Message-ID {message_id!r} is already on record",
        field="message_id",
    )

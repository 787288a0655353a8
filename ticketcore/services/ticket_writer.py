"""Group commit for new tickets.

Under load many tickets arrive at once. Writing each in its own transaction costs a BEGIN,
a COMMIT and four or five statements per ticket; on SQLite those transactions are
serialised anyway. ``TicketBatchWriter`` lets concurrent creations share one transaction:
the first caller to arrive becomes the *leader* and writes everything queued, in batches,
with one multi-row statement per table; the others wait for their result. A batch that
fails is retried ticket by ticket, so one bad ticket never fails its neighbours. Alone, a
ticket is simply a batch of one: there is a single write path.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.domain.enums import EntryKind
from ticketcore.domain.models import Actor, Principal, RoutingContext, Ticket
from ticketcore.services import sla
from ticketcore.services.attachments import StoredFile
from ticketcore.services.automation_inline import InlineOutcome, evaluate_new_ticket, record_inline
from ticketcore.services.history import EventDraft, record_events_many
from ticketcore.services.routing import (
    load_routing_context,
    note_routed,
    record_assignments,
    remember_routed,
    run_routing_chain,
)
from ticketcore.services.rows import dump_json
from ticketcore.services.sla import PLAN_COLUMNS, SlaPlan

if TYPE_CHECKING:
    from ticketcore.app import App

MAX_BATCH = 64
_NO_PLAN = tuple(SlaPlan().columns().values())


class PendingTicket(msgspec.Struct, kw_only=True):
    """A validated, triaged ticket waiting to be written."""

    actor: Principal
    draft: Ticket
    body_html: str | None
    files: list[StoredFile]
    message_id: str | None
    #: The ``created`` event's data: the values as submitted, before triage changed them.
    created: dict[str, Any]
    events: list[EventDraft]
    future: asyncio.Future[Ticket]
    #: The SLA columns to store (None: no SLA policy is enabled).
    sla: SlaPlan | None = None


class TicketBatchWriter:
    """Writes new tickets of one application, coalescing concurrent ones."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._queue: list[PendingTicket] = []
        self._leader_active = False
        self._leader: asyncio.Task[None] | None = None  # keeps the running leader referenced

    async def write(self, pending: PendingTicket) -> Ticket:
        """Queue a ticket and return it once committed (with its id), or raise its error."""
        if self.app.db.in_transaction():
            # The caller has its own transaction: this ticket must commit or roll back with
            # it, and no other caller's ticket may join it (a rollback there would drop
            # tickets already returned to their creators; a leader elsewhere would commit
            # this one even if the caller rolls back). Write it alone, in that transaction.
            [ticket] = await self._insert([pending])
            return ticket
        self._queue.append(pending)
        if not self._leader_active:
            # The leader runs as a task of its own, not in the creator who started it: when
            # that creator was cancelled (a timeout, a client gone) mid-batch, the others in
            # the batch waited for their futures forever.
            self._leader_active = True
            self._leader = asyncio.create_task(self._lead(), name="ticketcore-ticket-writer")
        return await pending.future

    async def _lead(self) -> None:
        """Write queued tickets, batch after batch, until the queue is empty."""
        batch: list[PendingTicket] = []
        try:
            while self._queue:
                # Yield once so creations already under way can join this batch (on
                # SQLite the writes below never suspend, so nobody could join otherwise).
                await asyncio.sleep(0)
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._write_batch(batch)
                batch = []
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody waits forever
            waiting, self._queue = [*batch, *self._queue], []
            for item in waiting:
                if not item.future.done():
                    item.future.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("writer stopped")
                    )
            raise
        finally:
            self._leader_active = False

    async def _write_batch(self, batch: list[PendingTicket]) -> None:
        try:
            results = await self._insert(batch)
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for item in batch:  # isolate the culprit: each alone
                await self._write_batch([item])
            return
        for item, ticket in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(ticket)
        self.app.jobs.wake()

    async def _insert(self, batch: list[PendingTicket]) -> list[Ticket]:
        app, db = self.app, self.app.db
        now = app.clock.now()
        async with db.transaction():
            drafts = await self._with_contacts([item.draft for item in batch], now)
            routing = await self._route(drafts, now)
            outcomes = await self._automate(batch, routing, now)
            drafts = [
                d if o is None else o.ticket for (d, _), o in zip(routing, outcomes, strict=True)
            ]
            columns = 15 + len(PLAN_COLUMNS)
            values = ", ".join(["(" + ", ".join(["{}"] * columns) + ")"] * len(drafts))
            args: list[Any] = []
            for d, item in zip(drafts, batch, strict=True):
                args += [
                    d.key,
                    d.subject,
                    d.description,
                    d.status.value,
                    d.priority.value,
                    d.category,
                    d.channel,
                    d.requester.id,
                    d.team_id,
                    d.assignee_id,
                    dump_json(d.custom_fields),
                    dump_json(d.tags),
                    1,
                    now,
                    now,
                ]
                args += item.sla.columns().values() if item.sla else _NO_PLAN
            insert = (
                "INSERT INTO ticket (key, subject, description, status, priority, category, "
                "channel, requester, team, assignee, custom_fields, tags, version, created_at, "
                f"updated_at, {', '.join(PLAN_COLUMNS)}) VALUES {values} RETURNING id, key"
            )
            tags = [(d.key, tag) for d in drafts for tag in d.tags]
            if tags and not db.is_sqlite:
                # The tags ride in the tickets' round trip (matched by key): a tagged ticket,
                # e.g. by an automation rule, costs no statement more than an untagged one.
                pairs = ", ".join(["({}::text, {}::text)"] * len(tags))
                insert = (
                    f"WITH t AS ({insert}), tagged AS (INSERT INTO ticket_tag (ticket, tag) "
                    f"SELECT t.id, v.tag FROM t JOIN (VALUES {pairs}) AS v (key, tag) "
                    "ON v.key = t.key) SELECT id, key FROM t"
                )
                args += [value for pair in tags for value in pair]
                tags = []
            rows = await db.fetch(insert, *args)
            ids = {row["key"]: row["id"] for row in rows}
            drafts = [
                msgspec.structs.replace(d, id=ids[d.key], created_at=now, updated_at=now)
                for d in drafts
            ]
            if tags:
                await self._insert_tags(drafts)
            await self._insert_entries(batch, drafts, now)
            await self._record_events(batch, drafts, routing, outcomes, now)
        return drafts

    async def _automate(
        self,
        batch: list[PendingTicket],
        routing: list[tuple[Ticket, list[EventDraft]]],
        now: datetime,
    ) -> list[InlineOutcome | None]:
        """Evaluate the automation rules on each new ticket's events before it is written
        (None for a ticket left to the worker); see
        :mod:`ticketcore.services.automation_inline`."""
        automation = self.app.automation
        rules = await automation.rule_set()
        sla_on = sla.enabled(self.app)
        return [
            evaluate_new_ticket(
                rules,
                draft,
                item.actor.actor,
                _own_events(draft, item, routed),
                now,
                max_depth=automation.max_depth,
                sla_enabled=sla_on,
            )
            for item, (draft, routed) in zip(batch, routing, strict=True)
        ]

    async def _record_events(
        self,
        batch: list[PendingTicket],
        drafts: list[Ticket],
        routing: list[tuple[Ticket, list[EventDraft]]],
        outcomes: list[InlineOutcome | None],
        now: datetime,
    ) -> None:
        """Record every new ticket's events in one statement, with what its rules did; the
        events of tickets left to the worker go to an ``automation`` job."""
        items: list[tuple[int, Actor, list[EventDraft]]] = []
        spans: list[tuple[int, int]] = []  # each ticket's events: (first row, row count)
        for item, d, (routed_draft, routed), outcome in zip(
            batch, drafts, routing, outcomes, strict=True
        ):
            events = (
                [(item.actor.actor, e) for e in _own_events(routed_draft, item, routed)]
                if outcome is None
                else outcome.events
            )
            spans.append((len(items), len(events)))
            items += [(d.id, actor, [event]) for actor, event in events]
        ids = await record_events_many(self.app, items, now, automate=False)
        deferred = [
            (event_id, drafts_[0].kind)
            for (first, count), outcome in zip(spans, outcomes, strict=True)
            if outcome is None
            for event_id, (_, _, drafts_) in zip(
                ids[first : first + count], items[first : first + count], strict=True
            )
        ]
        if deferred:
            await self.app.automation.enqueue_events(
                [i for i, _ in deferred], [kind for _, kind in deferred]
            )
        await record_inline(
            self.app,
            [
                (d.id, outcome, ids[first : first + count])
                for d, outcome, (first, count) in zip(drafts, outcomes, spans, strict=True)
                if outcome is not None
            ],
            now,
        )

    async def _with_contacts(self, drafts: list[Ticket], now: datetime) -> list[Ticket]:
        """Resolve requesters not yet known by id: one lookup for the batch, and one insert
        for the addresses never seen before."""
        emails = sorted({d.requester.email or "" for d in drafts if not d.requester.id})
        if not emails:
            return drafts
        directory = self.app.directory
        found = await directory.contacts_by_email(emails)
        missing = [
            d.requester for d in drafts if not d.requester.id and d.requester.email not in found
        ]
        if missing:
            await directory.insert_contacts(missing, now)
            found.update(await directory.contacts_by_email([c.email or "" for c in missing]))
        return [
            d
            if d.requester.id
            else msgspec.structs.replace(d, requester=found[d.requester.email or ""])
            for d in drafts
        ]

    async def _route(
        self,
        drafts: list[Ticket],
        now: datetime,
    ) -> list[tuple[Ticket, list[EventDraft]]]:
        if not self.app.hooks.implementers("route_ticket"):
            return [(d, []) for d in drafts]
        context: RoutingContext | None = None
        routed: list[tuple[Ticket, list[EventDraft]]] = []
        assignments: list[tuple[int, int, datetime]] = []  # (team, agent, stamp)
        for draft in drafts:
            if draft.assignee_id is not None:
                routed.append((draft, []))
                continue
            if context is None:
                context = await load_routing_context(self.app, now)
            result, events = run_routing_chain(self.app, draft, context)
            if result.assignee_id is not None and result.team_id is not None and events:
                # Later tickets of this batch must see this assignment (round robin); the
                # database gets the very stamp the snapshot now holds.
                context, stamp = note_routed(
                    self.app, context, result.team_id, result.assignee_id, now
                )
                assignments.append((result.team_id, result.assignee_id, stamp))
            routed.append((result, events))
        if context is not None:
            # Recorded here, still under the routing lock and from the stamps just computed
            # (the ticket rows follow in this transaction: a failure rolls both back).
            await record_assignments(self.app, assignments)
            # The next batch starts from here unless others changed it.
            remember_routed(self.app, context, [agent for _, agent, _ in assignments])
        return routed

    async def _insert_tags(self, drafts: list[Ticket]) -> None:
        pairs = [(d.id, tag) for d in drafts for tag in d.tags]
        if pairs:
            values = ", ".join(["({}, {})"] * len(pairs))
            await self.app.db.fetch(
                f"INSERT INTO ticket_tag (ticket, tag) VALUES {values}",
                *[v for pair in pairs for v in pair],
            )

    async def _insert_entries(
        self, batch: list[PendingTicket], drafts: list[Ticket], now: datetime
    ) -> None:
        values = ", ".join(["({}, {}, {}, {}, {}, {}, {}, {}, {})"] * len(drafts))
        args: list[Any] = []
        for item, d in zip(batch, drafts, strict=True):
            author = Actor(kind="contact", id=d.requester.id, name=d.requester.name)
            args += [
                d.id,
                EntryKind.MESSAGE_IN.value,
                author.kind,
                author.id,
                author.name,
                d.description,
                item.body_html,
                item.message_id,
                now,
            ]
        rows = await self.app.db.fetch(
            "INSERT INTO entry (ticket, kind, author_kind, author_id, author_name, body_text, "
            f"body_html, message_id, created_at) VALUES {values} RETURNING id, ticket",
            *args,
        )
        entry_of = {row["ticket"]: row["id"] for row in rows}
        files = [
            (entry_of[d.id], d.id, f)
            for item, d in zip(batch, drafts, strict=True)
            for f in item.files
        ]
        if files:
            values = ", ".join(["({}, {}, {}, {}, {}, {})"] * len(files))
            await self.app.db.fetch(
                "INSERT INTO attachment (entry, ticket, filename, content_type, size, sha256) "
                f"VALUES {values}",
                *[
                    v
                    for entry_id, ticket_id, f in files
                    for v in (entry_id, ticket_id, f.filename, f.content_type, f.size, f.sha256)
                ],
            )


def _own_events(draft: Ticket, item: PendingTicket, routed: list[EventDraft]) -> list[EventDraft]:
    """A new ticket's events before any rule: created, triage and SLA, routing."""
    created = EventDraft(kind="created", data={**item.created, "requester_id": draft.requester.id})
    return [created, *item.events, *routed]

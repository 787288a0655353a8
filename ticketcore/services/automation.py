"""Automation rules: stored as data (admins create, change, order, switch them off), kept
in a short-lived cache per process, and fed with the events the core records.

The events of every write are handed to the outbox (one ``automation`` job per write, in
the write's transaction) and evaluated by the worker after commit: see
:mod:`ticketcore.services.automation_engine`. One exception: a new ticket whose matching
rules only set tags, priority or category (or notify) gets them while it is written, in its
own transaction (:mod:`ticketcore.services.automation_inline`), with the same outcome.

Other processes see a rule change within :attr:`AutomationService.cache_seconds`; the
process that made it, at once.
"""

from __future__ import annotations

import builtins  # in AutomationService, `list` names the method
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.db.database import is_unique_violation
from ticketcore.domain.automation import (
    OWN_EVENT_KINDS,
    SINCE_EVENT_KINDS,
    Action,
    CompiledRule,
    Condition,
    Notify,
    Reorder,
    Reply,
    Rule,
    RuleInput,
    SetField,
    compile_rule,
    validate_rule,
)
from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound, ValidationFailed, VersionConflict
from ticketcore.services import permissions
from ticketcore.services.automation_chain import CURRENT_CHAIN, Chain
from ticketcore.services.rows import dump_json, load_json

if TYPE_CHECKING:
    from ticketcore.app import App


class RuleSet(msgspec.Struct, frozen=True, kw_only=True):
    """The enabled rules of one moment, compiled and indexed for the hot path."""

    event_rules: list[CompiledRule]
    time_rules: list[CompiledRule]
    by_id: dict[int, CompiledRule]
    #: Event rules per event kind (rules with no ``events`` are in every list), in order.
    by_kind: dict[str, list[CompiledRule]]
    #: Event kinds some rule listens to (as an event rule or a time rule's anchor); None:
    #: every kind (an event rule with no ``events``).
    listened: frozenset[str] | None = None

    @property
    def empty(self) -> bool:
        """Whether no rule is enabled."""
        return not self.by_id

    def listens(self, kinds: Sequence[str]) -> bool:
        """Whether a rule may react to one of these event kinds (else no job is queued)."""
        if self.listened is None:
            return any(kind not in OWN_EVENT_KINDS for kind in kinds)
        return any(kind in self.listened for kind in kinds)

    def for_event(self, kind: str) -> list[CompiledRule]:
        """The event rules an event of ``kind`` may trigger, in order."""
        found = self.by_kind.get(kind)
        if found is None:
            found = [r for r in self.event_rules if not r.rule.events]
        return found


def build_rule_set(rules: Sequence[Rule]) -> RuleSet:
    """Compile and index enabled rules (already in order)."""
    compiled = [compile_rule(r) for r in rules if r.enabled]
    event_rules = [c for c in compiled if c.rule.trigger == "event"]
    kinds = {kind for c in event_rules for kind in c.rule.events}
    by_kind = {
        kind: [c for c in event_rules if not c.rule.events or kind in c.rule.events]
        for kind in kinds
    }
    time_rules = [c for c in compiled if c.rule.trigger == "time"]
    listened: frozenset[str] | None = None
    if all(c.rule.events for c in event_rules):
        anchors = {kind for c in time_rules for kind in SINCE_EVENT_KINDS[c.rule.since]}
        listened = frozenset(kinds | anchors)
    return RuleSet(
        event_rules=event_rules,
        time_rules=time_rules,
        by_id={c.rule.id: c for c in compiled},
        by_kind=by_kind,
        listened=listened,
    )


def rule_from_row(row: dict[str, Any]) -> Rule:
    """A stored rule from its row."""
    definition = load_json(row["definition"]) or {}
    return Rule(
        id=row["id"],
        name=row["name"],
        trigger=row["trigger"],
        enabled=bool(row["enabled"]),
        position=row["position"],
        events=list(definition.get("events", [])),
        after_minutes=definition.get("after_minutes"),
        since=definition.get("since", "status"),
        conditions=msgspec.convert(definition.get("conditions", []), list[Condition]),
        actions=msgspec.convert(definition.get("actions", []), list[Action]),
        version=row["version"],
    )


def _definition(rule: RuleInput) -> str:
    return dump_json(
        {
            "events": rule.events,
            "after_minutes": rule.after_minutes,
            "since": rule.since,
            "conditions": msgspec.to_builtins(rule.conditions),
            "actions": msgspec.to_builtins(rule.actions),
        }
    )


class AutomationService:
    """Automation rules of one helpdesk: administration and the cached rule set."""

    #: How long another process's rule change may take to be seen here.
    cache_seconds = 2.0
    #: Longest chain of rule firings from one original event (the loop guard's cap).
    max_depth = 5

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db
        self._rules: RuleSet | None = None
        self._loaded_at = 0.0

    # --- the cached rule set ---------------------------------------------------------------

    async def rule_set(self) -> RuleSet:
        """The enabled rules, in order (cached for :attr:`cache_seconds`)."""
        now = time.monotonic()
        if self._rules is None or now - self._loaded_at > self.cache_seconds:
            rows = await self.db.fetch(
                "SELECT * FROM automation_rule WHERE enabled = {} ORDER BY position, id", True
            )
            self._rules = build_rule_set([rule_from_row(r) for r in rows])
            self._loaded_at = now
        return self._rules

    def invalidate(self) -> None:
        """Forget the cached rules (after a change made here)."""
        self._rules = None

    async def enqueue_events(self, event_ids: list[int], kinds: list[str]) -> None:
        """Queue the evaluation of just-recorded events (call in their transaction): one
        ``automation`` job for them all, carrying the chain of rules that caused them."""
        if not event_ids or all(kind in OWN_EVENT_KINDS for kind in kinds):
            return
        if not (await self.rule_set()).listens(kinds):
            return
        chain = CURRENT_CHAIN.get() or Chain()
        await self.app.jobs.enqueue(
            "automation",
            {"events": event_ids, **chain.payload()},
            key=f"automation:{event_ids[0]}",
        )

    # --- administration --------------------------------------------------------------------

    async def list(self, actor: Principal) -> list[Rule]:
        """Every rule, enabled or not, in run order (admins)."""
        permissions.ensure_admin(actor, "managing automation rules")
        rows = await self.db.fetch("SELECT * FROM automation_rule ORDER BY position, id")
        return [rule_from_row(r) for r in rows]

    async def get(self, actor: Principal, rule_id: int) -> Rule:
        """One rule (admins)."""
        permissions.ensure_admin(actor, "managing automation rules")
        return await self._get(rule_id)

    async def _get(self, rule_id: int) -> Rule:
        rows = await self.db.fetch("SELECT * FROM automation_rule WHERE id = {}", rule_id)
        if not rows:
            raise NotFound(f"automation rule {rule_id} not found", field="rule_id")
        return rule_from_row(rows[0])

    async def create(self, actor: Principal, cmd: RuleInput) -> Rule:
        """Store a new rule, last in order (admins); everything it names is checked now."""
        permissions.ensure_admin(actor, "managing automation rules")
        validate_rule(cmd)
        await self._check_references(cmd)
        now = self.app.clock.now()
        try:
            async with self.db.transaction():
                await self._ensure_free_name(cmd.name)
                position = await self.db.fetchval(
                    "SELECT COALESCE(MAX(position), 0) + 1 AS p FROM automation_rule"
                )
                rows = await self.db.fetch(
                    "INSERT INTO automation_rule (name, trigger, enabled, position, definition, "
                    "version, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, 1, {}, {}) "
                    "RETURNING id",
                    cmd.name,
                    cmd.trigger,
                    cmd.enabled,
                    int(position),
                    _definition(cmd),
                    now,
                    now,
                )
        except Exception as exc:
            if is_unique_violation(exc):
                raise _name_taken(cmd.name) from exc
            raise
        self.invalidate()
        return await self._get(int(rows[0]["id"]))

    async def update(self, actor: Principal, rule_id: int, cmd: RuleInput) -> Rule:
        """Replace a rule's definition (admins); with ``version``, refuse a stale one."""
        permissions.ensure_admin(actor, "managing automation rules")
        validate_rule(cmd)
        await self._check_references(cmd)
        async with self.db.transaction():
            current = await self._get(rule_id)
            if cmd.version is not None and cmd.version != current.version:
                raise VersionConflict(
                    f"automation rule {rule_id} changed since version {cmd.version}; it is "
                    f"now at version {current.version}: reload and retry",
                    field="version",
                    current_version=current.version,
                )
            if cmd.name != current.name:
                await self._ensure_free_name(cmd.name)
            await self.db.fetch(
                "UPDATE automation_rule SET name = {}, trigger = {}, enabled = {}, "
                "definition = {}, version = version + 1, updated_at = {} WHERE id = {}",
                cmd.name,
                cmd.trigger,
                cmd.enabled,
                _definition(cmd),
                self.app.clock.now(),
                rule_id,
            )
        self.invalidate()
        return await self._get(rule_id)

    async def set_enabled(self, actor: Principal, rule_id: int, enabled: bool) -> Rule:
        """Switch a rule on or off (admins)."""
        permissions.ensure_admin(actor, "managing automation rules")
        async with self.db.transaction():
            await self._get(rule_id)
            await self.db.fetch(
                "UPDATE automation_rule SET enabled = {}, version = version + 1, "
                "updated_at = {} WHERE id = {}",
                enabled,
                self.app.clock.now(),
                rule_id,
            )
        self.invalidate()
        return await self._get(rule_id)

    async def delete(self, actor: Principal, rule_id: int) -> None:
        """Remove a rule (admins); its pending timers then do nothing."""
        permissions.ensure_admin(actor, "managing automation rules")
        async with self.db.transaction():
            await self._get(rule_id)
            await self.db.fetch("DELETE FROM automation_rule WHERE id = {}", rule_id)
        self.invalidate()

    async def reorder(self, actor: Principal, cmd: Reorder) -> builtins.list[Rule]:
        """Set the run order: ``cmd.ids`` must list every rule exactly once (admins)."""
        permissions.ensure_admin(actor, "managing automation rules")
        async with self.db.transaction():
            existing = {r["id"] for r in await self.db.fetch("SELECT id FROM automation_rule")}
            if len(set(cmd.ids)) != len(cmd.ids):
                raise ValidationFailed("a rule is listed twice", field="ids")
            if set(cmd.ids) != existing:
                missing = sorted(existing - set(cmd.ids))
                unknown = sorted(set(cmd.ids) - existing)
                raise ValidationFailed(
                    "list every rule exactly once"
                    + (f"; missing: {missing}" if missing else "")
                    + (f"; unknown: {unknown}" if unknown else ""),
                    field="ids",
                )
            for position, rule_id in enumerate(cmd.ids, start=1):
                await self.db.fetch(
                    "UPDATE automation_rule SET position = {} WHERE id = {}", position, rule_id
                )
        self.invalidate()
        return await self.list(actor)

    async def _ensure_free_name(self, name: str) -> None:
        if await self.db.fetch("SELECT id FROM automation_rule WHERE name = {}", name):
            raise _name_taken(name)

    async def _check_references(self, cmd: RuleInput) -> None:
        """Teams, agents and macros that actions name must exist."""
        for i, action in enumerate(cmd.actions):
            where = f"actions[{i}]"
            if isinstance(action, SetField) and action.value is not None:
                if action.field == "team" and await self.resolve_team(action.value) is None:
                    raise ValidationFailed(
                        f"team {action.value!r} does not exist", field=f"{where}.value"
                    )
                if action.field == "assignee" and await self.resolve_agent(action.value) is None:
                    raise ValidationFailed(
                        f"no active agent {action.value!r}", field=f"{where}.value"
                    )
            elif isinstance(action, Reply):
                if not await self.db.fetch(
                    "SELECT id FROM macro WHERE id = {} AND active = {}", action.macro_id, True
                ):
                    raise ValidationFailed(
                        f"macro {action.macro_id} does not exist", field=f"{where}.macro_id"
                    )
            elif isinstance(action, Notify):
                for j, target in enumerate(action.to):
                    if target not in ("assignee", "requester") and "@" not in target:
                        raise ValidationFailed(
                            f"{target!r}: give an e-mail address, 'assignee' or 'requester'",
                            field=f"{where}.to[{j}]",
                        )

    async def resolve_team(self, value: str | int) -> int | None:
        """A team id from a slug or an id, or None."""
        if isinstance(value, int):
            rows = await self.db.fetch("SELECT id FROM team WHERE id = {}", value)
        else:
            rows = await self.db.fetch("SELECT id FROM team WHERE slug = {}", value)
        return int(rows[0]["id"]) if rows else None

    async def resolve_agent(self, value: str | int) -> int | None:
        """An active agent's (or admin's) id from an id or an e-mail, or None."""
        column = "id" if isinstance(value, int) else "email"
        rows = await self.db.fetch(
            f"SELECT id FROM app_user WHERE {column} = {{}} AND active = {{}} "
            "AND role IN ('agent', 'admin')",
            value,
            True,
        )
        return int(rows[0]["id"]) if rows else None


def _name_taken(name: str) -> ValidationFailed:
    return ValidationFailed(f"an automation rule named {name!r} exists", field="name")

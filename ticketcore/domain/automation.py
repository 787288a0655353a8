"""Automation rules as data: their shape, their validation and the pure matching of a rule
against a ticket and the event that changed it (no I/O here).

A rule has a *trigger*: ``event`` rules run when a ticket event of one of ``events`` is
recorded (any event when empty); ``time`` rules run ``after_minutes`` after an anchor (the
ticket's creation, its last status change or its last message) if the ticket still matches.
Conditions all have to hold; actions run in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from ticketcore.domain.enums import Priority, Status
from ticketcore.domain.lifecycle import TRANSITIONS
from ticketcore.domain.models import Ticket, TicketEvent
from ticketcore.errors import ValidationFailed

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

Operator = Literal[
    "is",
    "is_not",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "matches",
    "is_set",
    "is_not_set",
    "changed",
    "changed_from",
    "changed_to",
    "added",
    "removed",
]
#: Operators that look at the event's changes rather than the ticket's current state.
CHANGE_OPERATORS = frozenset({"changed", "changed_from", "changed_to", "added", "removed"})
#: Ticket fields whose changes events record (the names used in ``TicketEvent.changes``).
CHANGEABLE_FIELDS = frozenset({"status", "priority", "category", "team_id", "assignee_id", "tags"})
#: Fields a condition may name (besides ``custom_fields.<name>``).
CONDITION_FIELDS = frozenset(
    {
        *CHANGEABLE_FIELDS,
        "channel",
        "subject",
        "description",
        "text",  # subject and description
        "message",  # the text of the message or note the event added
        "requester.email",
        "requester.vip",
        "requester.organisation",
        "actor.kind",  # who made the change: user, contact, plugin, system
        "event",  # the event kind
    }
)
#: Event kinds the automation itself records: they never trigger rules.
OWN_EVENT_KINDS = frozenset({"automation_fired", "automation_failed", "automation_loop_stopped"})
#: What a time rule counts from.
Since = Literal["created", "status", "message"]
SINCE_EVENT_KINDS: dict[str, frozenset[str]] = {
    "created": frozenset({"created"}),
    "status": frozenset({"created", "status_changed"}),
    "message": frozenset({"message_added"}),
}


class Condition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One test: ``{"field": "priority", "op": "changed_to", "value": "critical"}``."""

    field: str
    op: Operator
    value: Any = None


class _Action(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="type"):
    pass


class SetField(_Action, tag="set_field", kw_only=True):
    """Set ``priority``, ``category``, ``team`` (slug or id) or ``assignee`` (id or e-mail);
    ``value`` null clears category, team or assignee."""

    field: Literal["priority", "category", "team", "assignee"]
    value: str | int | None = None


class Transition(_Action, tag="transition", kw_only=True):
    """Move the ticket through the lifecycle (``close``, ``resolve``...)."""

    transition: str


class AddTags(_Action, tag="add_tags", kw_only=True):
    """Add tags."""

    tags: list[str]


class RemoveTags(_Action, tag="remove_tags", kw_only=True):
    """Remove tags."""

    tags: list[str]


class Reply(_Action, tag="reply", kw_only=True):
    """Send a canned reply: apply the macro ``macro_id`` (its text, fields and status)."""

    macro_id: int


class Note(_Action, tag="note", kw_only=True):
    """Add an internal note; ``body`` may use the macro placeholders (``{{ ticket.subject }}``)."""

    body: Annotated[str, msgspec.Meta(min_length=1)]


class Notify(_Action, tag="notify", kw_only=True):
    """Send a notification through the notifiers: ``to`` holds e-mail addresses or
    ``assignee``, ``requester``."""

    to: Annotated[list[str], msgspec.Meta(min_length=1)]
    subject: Annotated[str, msgspec.Meta(min_length=1)]
    body: str = ""


class Webhook(_Action, tag="webhook", kw_only=True):
    """POST the ticket and the event as JSON to ``url`` (from the outbox, retried)."""

    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]


Action = SetField | Transition | AddTags | RemoveTags | Reply | Note | Notify | Webhook


class RuleInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A rule as an admin writes it (create and full update)."""

    name: _Name
    trigger: Literal["event", "time"] = "event"
    enabled: bool = True
    #: Event kinds that trigger an ``event`` rule (``created``, ``updated``,
    #: ``status_changed``, ``message_added``...); empty: every event.
    events: list[str] = []
    #: For ``time`` rules: how long after the anchor, and which anchor.
    after_minutes: Annotated[int, msgspec.Meta(ge=1)] | None = None
    since: Since = "status"
    conditions: list[Condition] = []
    actions: Annotated[list[Action], msgspec.Meta(min_length=1)]
    #: Optimistic concurrency on update: the version the change is based on.
    version: int | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """A stored rule."""

    id: int
    name: str
    trigger: Literal["event", "time"]
    enabled: bool
    position: int
    events: list[str]
    after_minutes: int | None
    since: Since
    conditions: list[Condition]
    actions: list[Action]
    version: int


class Reorder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ids of every rule, in the order they should run."""

    ids: list[int]


def validate_rule(rule: RuleInput) -> None:
    """Check what the types cannot: field names, operators, values, actions; raise
    ValidationFailed naming the offending part (e.g. ``conditions[1].op``)."""
    if rule.trigger == "time" and rule.after_minutes is None:
        raise ValidationFailed("a time rule needs after_minutes", field="after_minutes")
    if rule.trigger == "event" and rule.after_minutes is not None:
        raise ValidationFailed("after_minutes is only for time rules", field="after_minutes")
    if rule.trigger == "time" and rule.events:
        raise ValidationFailed(
            "a time rule runs after its anchor ('since'), not on events", field="events"
        )
    for i, kind in enumerate(rule.events):
        if kind in OWN_EVENT_KINDS:
            raise ValidationFailed(
                f"{kind!r} is recorded by the automation itself and triggers nothing",
                field=f"events[{i}]",
            )
    for i, cond in enumerate(rule.conditions):
        _validate_condition(cond, f"conditions[{i}]", rule.trigger)
    for i, action in enumerate(rule.actions):
        _validate_action(action, f"actions[{i}]")


def _validate_condition(cond: Condition, where: str, trigger: str) -> None:
    field = cond.field
    if field not in CONDITION_FIELDS and not (
        field.startswith("custom_fields.") and len(field) > len("custom_fields.")
    ):
        raise ValidationFailed(
            f"unknown field {field!r}; known: {', '.join(sorted(CONDITION_FIELDS))}, "
            "custom_fields.<name>",
            field=f"{where}.field",
        )
    if cond.op in CHANGE_OPERATORS:
        if trigger == "time":
            raise ValidationFailed(
                f"{cond.op!r} looks at an event's changes: time rules have none",
                field=f"{where}.op",
            )
        if field not in CHANGEABLE_FIELDS:
            raise ValidationFailed(
                f"{cond.op!r} needs a field whose changes are recorded: "
                f"{', '.join(sorted(CHANGEABLE_FIELDS))}",
                field=f"{where}.op",
            )
        if cond.op in ("added", "removed") and field != "tags":
            raise ValidationFailed(f"{cond.op!r} is for tags", field=f"{where}.op")
    needs_value = cond.op not in ("is_set", "is_not_set", "changed")
    if needs_value and cond.value is None and cond.op not in ("is", "is_not"):
        raise ValidationFailed(f"{cond.op!r} needs a value", field=f"{where}.value")
    if cond.op in ("in", "not_in") and not isinstance(cond.value, list):
        raise ValidationFailed(f"{cond.op!r} needs a list of values", field=f"{where}.value")
    if cond.op == "matches":
        if not isinstance(cond.value, str):
            raise ValidationFailed("'matches' needs a regular expression", field=f"{where}.value")
        try:
            re.compile(cond.value)
        except re.error as exc:
            raise ValidationFailed(
                f"invalid regular expression: {exc}", field=f"{where}.value"
            ) from exc
    enum = {"priority": Priority, "status": Status}.get(field)
    if enum is not None and cond.value is not None and cond.op not in ("matches", "contains"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        known = {e.value for e in enum}
        for value in values:
            if value not in known:
                raise ValidationFailed(
                    f"unknown {field} {value!r}; one of {', '.join(sorted(known))}",
                    field=f"{where}.value",
                )


def _validate_action(action: Action, where: str) -> None:
    if isinstance(action, SetField):
        if action.field == "priority" and action.value not in {p.value for p in Priority}:
            raise ValidationFailed(
                f"unknown priority {action.value!r}; one of {', '.join(p.value for p in Priority)}",
                field=f"{where}.value",
            )
    elif isinstance(action, Transition):
        if action.transition not in TRANSITIONS:
            raise ValidationFailed(
                f"unknown transition {action.transition!r}; known: {', '.join(TRANSITIONS)}",
                field=f"{where}.transition",
            )
    elif isinstance(action, AddTags | RemoveTags):
        for j, tag in enumerate(action.tags):
            if not tag.strip() or len(tag.strip()) > 100:
                raise ValidationFailed(
                    "a tag must have 1 to 100 characters", field=f"{where}.tags[{j}]"
                )


# --- matching ------------------------------------------------------------------------------


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What a rule is matched against: the ticket now, the event (None for time rules) and
    the text of the message the event added, when a rule asks for it."""

    ticket: Ticket
    event: TicketEvent | None = None
    message: str = ""


Test = Callable[[Facts], bool]
_MISSING = object()


def _value(facts: Facts, field: str) -> Any:
    t = facts.ticket
    match field:
        case "status":
            return t.status.value
        case "priority":
            return t.priority.value
        case "category":
            return t.category
        case "team_id":
            return t.team_id
        case "assignee_id":
            return t.assignee_id
        case "tags":
            return t.tags
        case "channel":
            return t.channel
        case "subject":
            return t.subject
        case "description":
            return t.description
        case "text":
            return f"{t.subject}\n{t.description}"
        case "message":
            return facts.message
        case "requester.email":
            return t.requester.email
        case "requester.vip":
            return t.requester.vip
        case "requester.organisation":
            return t.requester.organisation
        case "actor.kind":
            return facts.event.actor.kind if facts.event else None
        case "event":
            return facts.event.kind if facts.event else None
    return t.custom_fields.get(field.removeprefix("custom_fields."))


def _change(facts: Facts, field: str) -> tuple[Any, Any] | None:
    """(old, new) of ``field`` in the event; a ``created`` event counts as a change from
    nothing to the ticket's current value."""
    event = facts.event
    if event is None:
        return None
    change = event.changes.get(field)
    if change is not None:
        return change.old, change.new
    if event.kind == "created":
        return None, _value(facts, field)
    return None


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def compile_condition(cond: Condition) -> Test:
    """A fast test for one condition (string comparisons ignore case)."""
    field, op, value = cond.field, cond.op, cond.value
    wanted = _norm(value)
    if op in CHANGE_OPERATORS:
        return _compile_change(field, op, wanted)
    if op == "is":
        return lambda f: _norm(_value(f, field)) == wanted
    if op == "is_not":
        return lambda f: _norm(_value(f, field)) != wanted
    if op in ("in", "not_in"):
        options = {_norm(v) for v in value}
        if op == "in":
            return lambda f: _norm(_value(f, field)) in options
        return lambda f: _norm(_value(f, field)) not in options
    if op in ("contains", "not_contains"):

        def contains(f: Facts) -> bool:
            current = _value(f, field)
            if isinstance(current, list):
                return wanted in [_norm(v) for v in current]
            return isinstance(current, str) and str(wanted) in current.lower()

        return contains if op == "contains" else (lambda f: not contains(f))
    if op == "matches":
        pattern = re.compile(value, re.IGNORECASE)
        return lambda f: bool(pattern.search(str(_value(f, field) or "")))
    if op == "is_set":
        return lambda f: _value(f, field) not in (None, "", [], {})
    return lambda f: _value(f, field) in (None, "", [], {})  # is_not_set


def _compile_change(field: str, op: str, wanted: Any) -> Test:
    def test(f: Facts) -> bool:
        change = _change(f, field)
        if change is None:
            return False
        old, new = change
        if op == "changed":
            return old != new
        if op == "changed_from":
            return _norm(old) == wanted and old != new
        if op == "changed_to":
            return _norm(new) == wanted and old != new
        before = {_norm(v) for v in old or []}
        after = {_norm(v) for v in new or []}
        return wanted in (after - before if op == "added" else before - after)

    return test


class CompiledRule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule ready to be matched quickly."""

    rule: Rule
    tests: list[Test]
    #: Whether a condition needs the message text (loaded only then).
    needs_message: bool

    def matches(self, facts: Facts) -> bool:
        """Whether every condition holds."""
        return all(test(facts) for test in self.tests)


def compile_rule(rule: Rule) -> CompiledRule:
    """Compile a stored rule's conditions."""
    return CompiledRule(
        rule=rule,
        tests=[compile_condition(c) for c in rule.conditions],
        needs_message=any(c.field == "message" for c in rule.conditions),
    )

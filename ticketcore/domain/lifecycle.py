"""The ticket state machine: named transitions and the statuses each may start from."""

from __future__ import annotations

from dataclasses import dataclass

from ticketcore.domain.enums import Status
from ticketcore.errors import InvalidTransition

S = Status


@dataclass(frozen=True, slots=True)
class Transition:
    """A named move from any of ``sources`` to ``target``."""

    name: str
    sources: frozenset[Status]
    target: Status
    description: str


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition(
            "open",
            frozenset({S.NEW, S.PENDING_CUSTOMER, S.ON_HOLD}),
            S.OPEN,
            "start or resume work",
        ),
        Transition(
            "wait_for_customer",
            frozenset({S.NEW, S.OPEN, S.ON_HOLD}),
            S.PENDING_CUSTOMER,
            "the next step is the customer's",
        ),
        Transition(
            "hold",
            frozenset({S.NEW, S.OPEN, S.PENDING_CUSTOMER}),
            S.ON_HOLD,
            "waiting on a third party or a later date",
        ),
        Transition(
            "resolve",
            frozenset({S.NEW, S.OPEN, S.PENDING_CUSTOMER, S.ON_HOLD}),
            S.RESOLVED,
            "a solution was given",
        ),
        Transition(
            "close",
            frozenset({S.NEW, S.OPEN, S.PENDING_CUSTOMER, S.ON_HOLD, S.RESOLVED}),
            S.CLOSED,
            "done: confirmed, expired, spam or merged",
        ),
        Transition(
            "reopen",
            frozenset({S.RESOLVED, S.CLOSED}),
            S.OPEN,
            "the problem is back or the answer did not help",
        ),
    )
}


def allowed_transitions(status: Status) -> list[str]:
    """Names of the transitions that may start from ``status``, in declaration order."""
    return [t.name for t in TRANSITIONS.values() if status in t.sources]


def resolve_transition(name: str, status: Status) -> Transition:
    """Return the transition ``name`` from ``status``, or raise with what is allowed instead."""
    transition = TRANSITIONS.get(name)
    if transition is None:
        raise InvalidTransition(
            f"unknown transition {name!r}; known: {', '.join(TRANSITIONS)}",
            field="transition",
        )
    if status not in transition.sources:
        allowed = allowed_transitions(status)
        raise InvalidTransition(
            f"cannot {name!r} a ticket in status {status.value!r}; "
            f"allowed from there: {', '.join(allowed) or 'none'}",
            field="transition",
            status=status.value,
            allowed=allowed,
        )
    return transition

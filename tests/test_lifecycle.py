"""The ticket state machine (``ticketcore.domain.lifecycle``): every transition from every
status is allowed or refused as specified, and a refusal lists what is allowed instead.
Pure unit tests: no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketcore.domain.enums import Status
from ticketcore.domain.lifecycle import TRANSITIONS, allowed_transitions, resolve_transition
from ticketcore.errors import InvalidTransition

S = Status

#: The specification, written out independently of the implementation: name -> (sources, target).
SPEC: dict[str, tuple[set[Status], Status]] = {
    "open": ({S.NEW, S.PENDING_CUSTOMER, S.ON_HOLD}, S.OPEN),
    "wait_for_customer": ({S.NEW, S.OPEN, S.ON_HOLD}, S.PENDING_CUSTOMER),
    "hold": ({S.NEW, S.OPEN, S.PENDING_CUSTOMER}, S.ON_HOLD),
    "resolve": ({S.NEW, S.OPEN, S.PENDING_CUSTOMER, S.ON_HOLD}, S.RESOLVED),
    "close": ({S.NEW, S.OPEN, S.PENDING_CUSTOMER, S.ON_HOLD, S.RESOLVED}, S.CLOSED),
    "reopen": ({S.RESOLVED, S.CLOSED}, S.OPEN),
}

#: What may start from each status, in declaration order.
ALLOWED: dict[Status, list[str]] = {
    S.NEW: ["open", "wait_for_customer", "hold", "resolve", "close"],
    S.OPEN: ["wait_for_customer", "hold", "resolve", "close"],
    S.PENDING_CUSTOMER: ["open", "hold", "resolve", "close"],
    S.ON_HOLD: ["open", "wait_for_customer", "resolve", "close"],
    S.RESOLVED: ["close", "reopen"],
    S.CLOSED: ["reopen"],
}

CASES = [(status, name) for status in Status for name in SPEC]


def test_the_transitions_are_exactly_the_specified_ones() -> None:
    assert list(TRANSITIONS) == list(SPEC)
    for name, (sources, target) in SPEC.items():
        assert TRANSITIONS[name].sources == sources, name
        assert TRANSITIONS[name].target is target, name
        assert TRANSITIONS[name].description


@pytest.mark.parametrize(("status", "name"), CASES, ids=[f"{s.value}-{n}" for s, n in CASES])
def test_every_transition_from_every_status(status: Status, name: str) -> None:
    sources, target = SPEC[name]
    if status in sources:
        transition = resolve_transition(name, status)
        assert transition.name == name
        assert transition.target is target
        return
    with pytest.raises(InvalidTransition) as refused:
        resolve_transition(name, status)
    error = refused.value
    assert error.status_code == 409
    assert error.field == "transition"
    assert error.detail == {"status": status.value, "allowed": ALLOWED[status]}
    assert name in error.message and status.value in error.message
    for allowed in ALLOWED[status]:
        assert allowed in error.message
    body = error.to_dict()
    assert body["error"] == "invalid_transition"
    assert body["detail"]["allowed"] == ALLOWED[status]


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
def test_allowed_transitions_in_declaration_order(status: Status) -> None:
    assert allowed_transitions(status) == ALLOWED[status]


def test_unknown_transition_names_the_known_ones() -> None:
    with pytest.raises(InvalidTransition) as refused:
        resolve_transition("teleport", S.OPEN)
    assert refused.value.field == "transition"
    assert "allowed" not in refused.value.detail
    for name in SPEC:
        assert name in refused.value.message


@given(st.text(max_size=30).filter(lambda name: name not in SPEC), st.sampled_from(list(Status)))
def test_any_other_name_is_refused(name: str, status: Status) -> None:
    with pytest.raises(InvalidTransition) as refused:
        resolve_transition(name, status)
    assert refused.value.field == "transition"


def test_no_self_loops_no_dead_ends_everything_reachable() -> None:
    for name, (sources, target) in SPEC.items():
        assert target not in sources, name
    for status in Status:
        assert allowed_transitions(status), f"{status} is a dead end"
    reachable = {S.NEW}
    frontier = [S.NEW]
    while frontier:
        here = frontier.pop()
        for name in allowed_transitions(here):
            there = TRANSITIONS[name].target
            if there not in reachable:
                reachable.add(there)
                frontier.append(there)
    assert reachable == set(Status)


@given(st.lists(st.sampled_from(list(SPEC)), max_size=40))
def test_random_walks_follow_the_table(names: list[str]) -> None:
    status = S.NEW
    for name in names:
        sources, target = SPEC[name]
        if status in sources:
            status = resolve_transition(name, status).target
            assert status is target
        else:
            with pytest.raises(InvalidTransition):
                resolve_transition(name, status)

"""The request mix of bench/workload.md: what each phase sends, generated from a seeded RNG."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

API = "/api/v1/tickets"
PRIORITIES = ("low", "normal", "high", "critical")
CUSTOMERS = 200
SUBJECT_WORDS = 8
BODY_CHARS = 320
REPLY_CHARS = 200

#: Phase names, in the order they run.
WRITE_PHASES = ("create", "reply")
READ_PHASES = ("list", "detail", "filter_status", "filter_team_status")

_WORD_TEXT = (
    "printer invoice login password reset account billing refund shipping order delivery "
    "broken error crash slow timeout update install license renewal access denied email "
    "calendar sync mobile app laptop screen keyboard network vpn wifi server backup "
    "restore report export import customer portal payment card declined address change "
    "cancel subscription upgrade downgrade trial feature request question urgent please "
    "help thanks"
)
_WORDS = tuple(_WORD_TEXT.split())


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request of a phase and the status code that counts as success."""

    method: str
    url: str
    expect: int
    body: dict[str, Any] | None = None


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _text(rng: random.Random, chars: int) -> str:
    """Random words, cut to exactly ``chars`` characters."""
    parts: list[str] = []
    length = 0
    while length < chars:  # bounded: every word adds at least 3 characters
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:chars].rstrip() + "."


def create_calls(rng: random.Random, count: int, team_id: int) -> list[Call]:
    """``count`` ticket creations: 200 requesters, priorities cycling through the levels."""
    return [
        Call(
            "POST",
            f"{API}/",
            201,
            {
                "subject": f"Bench ticket #{i}: {_words(rng, SUBJECT_WORDS)}",
                "body": _text(rng, BODY_CHARS),
                "requester": {"email": f"customer{i % CUSTOMERS}@example.com"},
                "priority": PRIORITIES[i % len(PRIORITIES)],
                "team_id": team_id,
            },
        )
        for i in range(count)
    ]


def reply_calls(rng: random.Random, count: int, ticket_ids: Sequence[int]) -> list[Call]:
    """``count`` public agent messages on tickets picked uniformly among ``ticket_ids``."""
    return [
        Call(
            "POST",
            f"{API}/{rng.choice(ticket_ids)}/messages",
            201,
            {"body": _text(rng, REPLY_CHARS)},
        )
        for _ in range(count)
    ]


def list_calls(count: int) -> list[Call]:
    """The first page of the ticket list, default page size and ordering."""
    return [Call("GET", f"{API}/", 200) for _ in range(count)]


def detail_calls(rng: random.Random, count: int, ticket_ids: Sequence[int]) -> list[Call]:
    """One ticket each, picked uniformly among ``ticket_ids`` (a list or a range)."""
    return [Call("GET", f"{API}/{rng.choice(ticket_ids)}", 200) for _ in range(count)]


def filter_status_calls(count: int) -> list[Call]:
    """The first page of the list filtered by ``status=new``."""
    return [Call("GET", f"{API}/?status=new", 200) for _ in range(count)]


def filter_team_status_calls(rng: random.Random, count: int, team_ids: Sequence[int]) -> list[Call]:
    """The first page filtered by team (picked uniformly) and ``status=new``."""
    return [
        Call("GET", f"{API}/?team_id={rng.choice(team_ids)}&status=new", 200) for _ in range(count)
    ]


def read_calls(
    phase: str,
    rng: random.Random,
    count: int,
    ticket_ids: Sequence[int],
    team_ids: Sequence[int],
) -> list[Call]:
    """The calls of one read phase (see READ_PHASES)."""
    if phase == "list":
        return list_calls(count)
    if phase == "detail":
        return detail_calls(rng, count, ticket_ids)
    if phase == "filter_status":
        return filter_status_calls(count)
    if phase == "filter_team_status":
        return filter_team_status_calls(rng, count, team_ids)
    raise ValueError(f"unknown read phase {phase!r}")

"""The chain of rule firings an event belongs to, carried from a rule's actions to the
events they record (a context variable) and on to the outbox job that evaluates those
events (its payload): the loop guard's memory."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import msgspec


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """Where an event stands in a chain of rules: the event that started it, how many rule
    firings led to it, and which rules fired on the way (ids, in order)."""

    origin: int | None = None
    depth: int = 0
    path: tuple[int, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The chain as job payload fields (empty for an event no rule caused)."""
        if self.origin is None:
            return {}
        return {"origin": self.origin, "depth": self.depth, "path": list(self.path)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Chain:
        """Read back what :meth:`payload` wrote."""
        return cls(
            origin=payload.get("origin"),
            depth=int(payload.get("depth", 0)),
            path=tuple(payload.get("path", ())),
        )

    def after(self, event_id: int, rule_id: int) -> Chain:
        """The chain of the events that ``rule_id`` records when it fires on ``event_id``."""
        return Chain(
            origin=self.origin if self.origin is not None else event_id,
            depth=self.depth + 1,
            path=(*self.path, rule_id),
        )


#: Set while a rule's actions run: the events they record belong to this chain.
CURRENT_CHAIN: ContextVar[Chain | None] = ContextVar("ticketcore_automation_chain", default=None)

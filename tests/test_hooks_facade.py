"""The hooks facade (``ticketcore.hooks.Hooks``): how the host calls sync and async hooks.

pluggy has no async support; these tests pin down what the facade adds on top of it: awaiting
async implementations in a first-result walk, isolating failures in broadcasts, the ``only=``
filter, and keeping pluggy's own call order (``tryfirst``/``trylast``, registration order).
No database is needed: the plugin manager is built directly.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pluggy
import pytest

from ticketcore import (
    Contact,
    InboundMessage,
    KbHit,
    Priority,
    Screening,
    SlaTargets,
    Status,
    Ticket,
    hookimpl,
)
from ticketcore.hooks import Hooks
from ticketcore.plugin_manager import new_plugin_manager

MESSAGE = InboundMessage(channel="email", sender_email="mailer-daemon@example.org")


class Screener:
    """A ``screen_inbound`` plugin answering ``verdict`` (or None), sync or async."""

    def __init__(self, name: str, calls: list[str], verdict: str | None, *, is_async: bool) -> None:
        self.name = name
        self.calls = calls
        self.verdict = verdict
        self.is_async = is_async

    def _answer(self) -> Screening | None:
        self.calls.append(self.name)
        if self.verdict is None:
            return None
        return Screening(verdict=self.verdict, reason=f"{self.name} says so")  # type: ignore[arg-type]

    @hookimpl
    def screen_inbound(self, message: InboundMessage) -> Any:
        """Answer now, or return a coroutine that answers when awaited."""
        if not self.is_async:
            return self._answer()

        async def later() -> Screening | None:
            await asyncio.sleep(0)
            return self._answer()

        return later()


def manager(*plugins: tuple[str, Any]) -> tuple[pluggy.PluginManager, Hooks]:
    """A plugin manager with these plugins registered so that they are called in the order
    given (pluggy calls the last registered first)."""
    pm = new_plugin_manager()
    for name, plugin in reversed(plugins):
        pm.register(plugin, name=name)
    return pm, Hooks(pm)


# --- first_result ---------------------------------------------------------------------------


async def test_first_result_awaits_async_implementations_and_stops_at_first_answer() -> None:
    calls: list[str] = []
    _, hooks = manager(
        ("a", Screener("a", calls, None, is_async=False)),
        ("b", Screener("b", calls, None, is_async=True)),
        ("c", Screener("c", calls, "reject", is_async=True)),
        ("d", Screener("d", calls, "record_only", is_async=False)),
    )

    result = await hooks.first_result("screen_inbound", message=MESSAGE)

    assert result == Screening(verdict="reject", reason="c says so")
    assert calls == ["a", "b", "c"], "d must not be called once c answered"


async def test_pluggy_alone_stops_at_the_unawaited_coroutine() -> None:
    """Why the facade exists: pluggy takes an async implementation's coroutine for an answer,
    so the sync plugin after it that really answers is never called."""
    calls: list[str] = []
    pm, hooks = manager(
        ("silent", Screener("silent", calls, None, is_async=True)),
        ("answers", Screener("answers", calls, "reject", is_async=False)),
    )

    raw = pm.hook.screen_inbound(message=MESSAGE)
    assert inspect.iscoroutine(raw)
    raw.close()  # never awaited: close it so no "never awaited" warning is raised
    assert calls == []

    assert await hooks.first_result("screen_inbound", message=MESSAGE) == Screening(
        verdict="reject", reason="answers says so"
    )
    assert calls == ["silent", "answers"]


async def test_first_result_is_none_when_nobody_answers() -> None:
    calls: list[str] = []
    _, hooks = manager(
        ("a", Screener("a", calls, None, is_async=True)),
        ("b", Screener("b", calls, None, is_async=False)),
    )

    assert await hooks.first_result("screen_inbound", message=MESSAGE) is None
    assert calls == ["a", "b"]


async def test_first_result_lets_a_failure_propagate() -> None:
    """First-result hooks are not isolated: a failing implementation is the caller's error
    (the job that called it is retried), and later ones are not consulted."""

    class Broken:
        """Raises while screening."""

        @hookimpl
        async def screen_inbound(self, message: InboundMessage) -> None:
            """Fail."""
            raise LookupError("spam database unreachable")

    calls: list[str] = []
    _, hooks = manager(("broken", Broken()), ("b", Screener("b", calls, "reject", is_async=False)))

    with pytest.raises(LookupError, match="spam database unreachable"):
        await hooks.first_result("screen_inbound", message=MESSAGE)
    assert calls == []


async def test_hook_wrappers_are_not_taken_for_implementations() -> None:
    """A wrapper is a generator around the others: the facade must neither return it as a
    result nor count its plugin as an implementer."""

    class Wrapper:
        """Wraps screening (as a calendar wrapper would wrap compute_sla)."""

        @hookimpl(wrapper=True)
        def screen_inbound(self, message: InboundMessage) -> Generator[None, Any, Any]:
            """Pass the result through."""
            return (yield)

    calls: list[str] = []
    pm, hooks = manager(("wrap", Wrapper()), ("a", Screener("a", calls, "reject", is_async=False)))

    assert hooks.implementers("screen_inbound") == ["a"]
    assert await hooks.first_result("screen_inbound", message=MESSAGE) == Screening(
        verdict="reject", reason="a says so"
    )
    assert [o.plugin for o in await hooks.broadcast("screen_inbound", message=MESSAGE)] == ["a"]
    assert pm.hook.screen_inbound(message=MESSAGE).reason == "a says so"  # pluggy runs it


# --- broadcast ------------------------------------------------------------------------------


class Source:
    """A ``kb_search`` plugin that answers, or fails, sync or async."""

    def __init__(self, name: str, *, is_async: bool, fail: bool = False) -> None:
        self.name = name
        self.is_async = is_async
        self.fail = fail
        self.calls = 0

    def _answer(self, query: str) -> list[KbHit]:
        self.calls += 1
        if self.fail:
            raise RuntimeError(f"{self.name} is down")
        return [KbHit(source=self.name, title=query, url=f"https://kb/{self.name}")]

    @hookimpl
    def kb_search(self, query: str, limit: int) -> Any:
        """Search now, or in a coroutine."""
        if not self.is_async:
            return self._answer(query)

        async def later() -> list[KbHit]:
            await asyncio.sleep(0)
            return self._answer(query)

        return later()


async def test_broadcast_isolates_sync_and_async_failures() -> None:
    sources = {
        "sync_ok": Source("sync_ok", is_async=False),
        "sync_fail": Source("sync_fail", is_async=False, fail=True),
        "async_ok": Source("async_ok", is_async=True),
        "async_fail": Source("async_fail", is_async=True, fail=True),
    }
    _, hooks = manager(*sources.items())

    outcomes = await hooks.broadcast("kb_search", query="vpn", limit=3)

    assert [o.plugin for o in outcomes] == list(sources), "outcomes come in call order"
    by_name = {o.plugin: o for o in outcomes}
    assert by_name["sync_ok"].ok and by_name["sync_ok"].result[0].source == "sync_ok"
    assert by_name["async_ok"].ok and by_name["async_ok"].result[0].source == "async_ok"
    assert not by_name["sync_fail"].ok
    assert by_name["sync_fail"].error == "RuntimeError: sync_fail is down"
    assert by_name["async_fail"].error == "RuntimeError: async_fail is down"
    assert all(s.calls == 1 for s in sources.values())


async def test_broadcast_only_calls_the_plugins_named() -> None:
    sources = {n: Source(n, is_async=n.startswith("a")) for n in ("a1", "s1", "a2", "s2")}
    _, hooks = manager(*sources.items())

    outcomes = await hooks.broadcast("kb_search", only={"s2", "a1"}, query="q", limit=1)

    assert [o.plugin for o in outcomes] == ["a1", "s2"]
    assert {n: s.calls for n, s in sources.items()} == {"a1": 1, "s1": 0, "a2": 0, "s2": 1}


async def test_broadcast_with_no_implementation_is_empty() -> None:
    _, hooks = manager()

    assert await hooks.broadcast("kb_search", query="q", limit=1) == []
    assert await hooks.first_result("screen_inbound", message=MESSAGE) is None


# --- call order -----------------------------------------------------------------------------


class Ordered:
    """Records its name when ``kb_search`` is called; placed by tryfirst/trylast."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def _record(self) -> list[KbHit]:
        self.calls.append(self.name)
        return []


class Plain(Ordered):
    """No ordering mark."""

    @hookimpl
    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        """Record the call."""
        return self._record()


class First(Ordered):
    """``tryfirst``."""

    @hookimpl(tryfirst=True)
    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        """Record the call."""
        return self._record()


class Last(Ordered):
    """``trylast``."""

    @hookimpl(trylast=True)
    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        """Record the call."""
        return self._record()


KINDS = {"plain1": Plain, "plain2": Plain, "first": First, "last": Last}


@pytest.mark.parametrize("registration", list(itertools.permutations(KINDS)), ids="-".join)
async def test_facade_keeps_pluggys_call_order(registration: tuple[str, ...]) -> None:
    """In every registration order, the facade calls implementations in exactly the order
    pluggy does: tryfirst first, trylast last, the others last-registered first."""
    calls: list[str] = []
    pm = new_plugin_manager()
    for name in registration:
        pm.register(KINDS[name](name, calls), name=name)
    hooks = Hooks(pm)

    pm.hook.kb_search(query="q", limit=1)
    pluggy_order = list(calls)
    calls.clear()
    await hooks.broadcast("kb_search", query="q", limit=1)
    broadcast_order = list(calls)
    calls.clear()
    await hooks.first_result("kb_search", query="q", limit=1)  # [] is not None: stops at 1st

    assert pluggy_order[0] == "first" and pluggy_order[-1] == "last"
    plain = [n for n in registration if n.startswith("plain")]
    assert pluggy_order[1:3] == plain[::-1]
    assert hooks.implementers("kb_search") == pluggy_order
    assert broadcast_order == pluggy_order
    assert calls == pluggy_order[:1]
    assert [name for name, _ in hooks.iter_results("kb_search", query="q", limit=1)] == (
        pluggy_order
    )


# --- sync-only helpers ----------------------------------------------------------------------


def test_iter_results_and_callers_refuse_async_implementations() -> None:
    """Decision hooks are sync: an async implementation is a bug reported by name (and its
    coroutine is closed, not leaked)."""
    calls: list[str] = []
    _, hooks = manager(("slow", Screener("slow", calls, "reject", is_async=True)))

    with pytest.raises(TypeError, match="slow: hook screen_inbound must be synchronous"):
        list(hooks.iter_results("screen_inbound", message=MESSAGE))
    (name, call), *_ = hooks.callers("screen_inbound")
    assert name == "slow"
    with pytest.raises(TypeError, match="slow: hook screen_inbound must be synchronous"):
        call(message=MESSAGE)


# --- hooks the core does not call yet ---------------------------------------------------------
# screen_inbound, match_inbound, compute_sla, kb_search and kb_suggest have no caller in the
# core so far (no intake, SLA or knowledge-base service): these tests pin down what the facade
# gives their future callers.

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TICKET = Ticket(
    id=7,
    key="k-7",
    subject="VPN down",
    status=Status.NEW,
    priority=Priority.HIGH,
    category=None,
    channel="email",
    requester=Contact(id=1, name="Carol", email="carol@customer.test", vip=True),
    team_id=None,
    assignee_id=None,
    tags=[],
    custom_fields={},
    version=1,
    created_at=NOW,
    updated_at=NOW,
)


class Matcher:
    """Threads a message onto the candidate whose subject it repeats (sync, pure)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls = 0

    @hookimpl
    def match_inbound(self, message: InboundMessage, candidates: list[Ticket]) -> int | None:
        """The first candidate whose subject follows our prefix."""
        self.calls += 1
        for ticket in candidates:
            if message.subject == f"{self.prefix}{ticket.subject}":
                return ticket.id
        return None


async def test_match_inbound_first_matcher_that_knows_the_message_wins() -> None:
    by_token, by_reply, by_forward = Matcher("[#7] "), Matcher("Re: "), Matcher("Re: ")
    _, hooks = manager(("token", by_token), ("reply", by_reply), ("forward", by_forward))
    message = InboundMessage(
        channel="email", sender_email="carol@customer.test", subject="Re: VPN down"
    )

    assert await hooks.first_result("match_inbound", message=message, candidates=[TICKET]) == 7
    assert (by_token.calls, by_reply.calls, by_forward.calls) == (1, 1, 0)
    assert await hooks.first_result("match_inbound", message=message, candidates=[]) is None


class Policy:
    """An SLA policy that applies to VIP requesters or to everyone."""

    def __init__(self, name: str, *, vip_only: bool, hours: int) -> None:
        self.name = name
        self.vip_only = vip_only
        self.hours = hours

    @hookimpl
    def compute_sla(self, ticket: Ticket, now: datetime) -> SlaTargets | None:
        """Due times from ``now``."""
        if self.vip_only and not ticket.requester.vip:
            return None
        return SlaTargets(policy=self.name, first_response_due=now + timedelta(hours=self.hours))


async def test_compute_sla_first_applicable_policy_wins() -> None:
    _, hooks = manager(
        ("vip", Policy("vip", vip_only=True, hours=1)),
        ("standard", Policy("standard", vip_only=False, hours=8)),
    )
    regular = msgspec.structs.replace(TICKET, requester=Contact(id=2, name="Dave"))

    vip_targets = await hooks.first_result("compute_sla", ticket=TICKET, now=NOW)
    regular_targets = await hooks.first_result("compute_sla", ticket=regular, now=NOW)

    assert vip_targets == SlaTargets(policy="vip", first_response_due=NOW + timedelta(hours=1))
    assert regular_targets.policy == "standard"
    assert regular_targets.first_response_due == NOW + timedelta(hours=8)


class Suggester:
    """Suggests articles for a ticket (sync or async), or fails."""

    def __init__(self, name: str, scores: list[float], *, is_async: bool, fail: bool = False):
        self.name = name
        self.scores = scores
        self.is_async = is_async
        self.fail = fail

    def _hits(self, ticket: Ticket, limit: int) -> list[KbHit]:
        if self.fail:
            raise TimeoutError(f"{self.name} timed out")
        return [
            KbHit(source=self.name, title=f"{ticket.subject} #{i}", url=f"u{i}", score=score)
            for i, score in enumerate(self.scores[:limit])
        ]

    @hookimpl
    def kb_suggest(self, ticket: Ticket, limit: int) -> Any:
        """Hits for the ticket."""
        if not self.is_async:
            return self._hits(ticket, limit)

        async def later() -> list[KbHit]:
            await asyncio.sleep(0)
            return self._hits(ticket, limit)

        return later()


async def test_kb_suggest_answers_are_gathered_per_source_for_the_host_to_rank() -> None:
    _, hooks = manager(
        ("wiki", Suggester("wiki", [0.4, 0.9, 0.1], is_async=True)),
        ("vendor", Suggester("vendor", [0.7], is_async=False)),
        ("slow", Suggester("slow", [1.0], is_async=True, fail=True)),
    )

    outcomes = await hooks.broadcast("kb_suggest", ticket=TICKET, limit=2)

    assert [(o.plugin, o.ok) for o in outcomes] == [
        ("wiki", True),
        ("vendor", True),
        ("slow", False),
    ]
    merged = sorted(
        (hit for o in outcomes if o.ok for hit in o.result), key=lambda h: h.score, reverse=True
    )
    assert [(h.source, h.score) for h in merged] == [("wiki", 0.9), ("vendor", 0.7), ("wiki", 0.4)]

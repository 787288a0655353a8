"""The facade that calls hooks: sync or async, first result or broadcast, failures isolated.

pluggy has no async support: an un-awaited coroutine is "a result", so a first-result hook
would stop at the first async implementation. Here implementations are walked one by one in
pluggy's own call order, each result awaited when it is awaitable.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pluggy
from pluggy import HookImpl

log = logging.getLogger("ticketcore.hooks")


class HookOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one implementation of a broadcast hook returned or raised."""

    plugin: str
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the implementation finished without raising."""
        return self.error is None


class Hooks:
    """Calls the hooks of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def _impls(self, name: str) -> list[HookImpl]:
        """Implementations in the order pluggy would call them (config order for ours).

        Hook wrappers (``wrapper=True`` / ``hookwrapper=True``) are left out: they are
        generators meant to surround the other implementations, and calling one as an
        implementation returned a generator object as the "first result" (and made it look
        like a plugin to deliver events to). The facade does not run wrappers; they take
        effect only where the host calls through pluggy itself (``pm.hook.<name>(...)``).
        """
        caller = getattr(self.pm.hook, name)
        return [
            impl
            for impl in reversed(caller.get_hookimpls())
            if not (impl.wrapper or impl.hookwrapper)
        ]

    def implementers(self, name: str) -> list[str]:
        """Names of the plugins implementing hook ``name``, in call order."""
        return [impl.plugin_name for impl in self._impls(name)]

    @staticmethod
    def _call(impl: HookImpl, kwargs: dict[str, Any]) -> Any:
        return impl.function(*[kwargs[arg] for arg in impl.argnames])

    def callers(self, name: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin, function taking keyword arguments) per implementation, in call order.

        For chains where each step sees what the previous one decided.
        """
        return [
            (impl.plugin_name, functools.partial(self._call_kw, impl)) for impl in self._impls(name)
        ]

    @classmethod
    def _call_kw(cls, impl: HookImpl, **kwargs: Any) -> Any:
        result = cls._call(impl, kwargs)
        if inspect.isawaitable(result):
            _discard(result)
            raise TypeError(
                f"{impl.plugin_name}: hook {impl.function.__name__} must be synchronous"
            )
        return result

    def iter_results(self, name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call a sync hook's implementations lazily, yielding (plugin, result) pairs.

        Used for chains (routing, classification) where the host decides when to stop and
        needs to know which plugin answered. Exceptions propagate: decisions are pure and a
        failing one is a bug to surface, not to hide.
        """
        for impl in self._impls(name):
            result = self._call(impl, kwargs)
            if inspect.isawaitable(result):
                _discard(result)
                raise TypeError(f"{impl.plugin_name}: hook {name} must be synchronous")
            yield impl.plugin_name, result

    async def first_result(self, name: str, **kwargs: Any) -> Any:
        """The first non-None result, awaiting async implementations; None if none answers."""
        for impl in self._impls(name):
            result = self._call(impl, kwargs)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    async def broadcast(
        self, name: str, *, only: set[str] | None = None, **kwargs: Any
    ) -> list[HookOutcome]:
        """Call every implementation (or those named in ``only``); one failing never stops
        the others. Never call this inside a database transaction: implementations run
        concurrently and may use the database.
        """
        impls = [i for i in self._impls(name) if only is None or i.plugin_name in only]
        names: list[str] = []
        pending: list[Any] = []
        outcomes: dict[str, HookOutcome] = {}
        for impl in impls:
            try:
                result = self._call(impl, kwargs)
            except Exception as exc:  # isolated by contract
                log.exception("hook %s failed in plugin %s", name, impl.plugin_name)
                outcomes[impl.plugin_name] = HookOutcome(
                    plugin=impl.plugin_name, error=_describe(exc)
                )
                continue
            if inspect.isawaitable(result):
                names.append(impl.plugin_name)
                pending.append(result)
            else:
                outcomes[impl.plugin_name] = HookOutcome(plugin=impl.plugin_name, result=result)
        for plugin, result in zip(
            names, await asyncio.gather(*pending, return_exceptions=True), strict=True
        ):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                log.error("hook %s failed in plugin %s: %s", name, plugin, result)
                outcomes[plugin] = HookOutcome(plugin=plugin, error=_describe(result))
            else:
                outcomes[plugin] = HookOutcome(plugin=plugin, result=result)
        return [outcomes[impl.plugin_name] for impl in impls]

    def collect(self, name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a sync registration hook everywhere and return (plugin, result) pairs."""
        return list(self.iter_results(name, **kwargs))


def _discard(awaitable: Any) -> None:
    """Close a coroutine that will never be awaited (a sync hook implemented as async), so
    the real error is not followed by a "coroutine was never awaited" warning."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

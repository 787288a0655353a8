"""Keeping the web app in step with plugins enabled and disabled at run time."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler

from ticketcore.app import App


async def follow_plugin_changes(request: Request[Any, Any, Any]) -> None:
    """``before_request``: apply plugin changes made by another process (checked at most
    every few seconds, see ``PluginRuntime.max_age``)."""
    helpdesk: App = request.app.state.helpdesk
    await helpdesk.plugin_runtime.refresh()


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


def plugin_enabled_guard(qualified_name: str) -> Guard:
    """A guard answering 404 while plugin ``kind.name`` is not in the running set (its
    routes were registered when the server started; disabling it must make them vanish)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        helpdesk: App = connection.app.state.helpdesk
        # Guards run before ``before_request``: follow other processes' changes here too.
        await helpdesk.plugin_runtime.refresh()
        if not helpdesk.plugin_runtime.is_enabled(qualified_name):
            raise NotFoundException(f"{qualified_name} is not enabled")

    return guard

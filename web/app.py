"""``create_app``: the Litestar application of one helpdesk. No module-level app object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from ticketcore import __version__
from ticketcore.app import App
from ticketcore.web.api.automation import AutomationRuleController
from ticketcore.web.api.knowledge import KnowledgeController
from ticketcore.web.api.macros import MacroController
from ticketcore.web.api.notifications import (
    DeliveryLogController,
    NotificationController,
    OrganisationPreferenceController,
)
from ticketcore.web.api.satisfaction import SatisfactionController
from ticketcore.web.api.system import SystemController, healthz
from ticketcore.web.api.tickets import AttachmentController, TicketController
from ticketcore.web.auth import provide_helpdesk, provide_principal
from ticketcore.web.errors import EXCEPTION_HANDLERS
from ticketcore.web.plugin_guard import follow_plugin_changes, plugin_enabled_guard
from ticketcore.web.ui import ui_routes
from ticketcore.web.ui.context import UiState


def create_app(
    helpdesk: App, *, run_worker: bool | None = None, run_migrations: bool = True
) -> Litestar:
    """Build the web application around a helpdesk.

    The helpdesk starts with the server (migrations, plugin ``startup`` hooks) and, unless
    ``run_worker`` is False (default: the ``server.embedded_worker`` setting), runs one
    embedded job worker so a single process is a complete helpdesk.
    """
    embedded = helpdesk.settings.server.embedded_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await helpdesk.start(run_migrations=run_migrations)
        if embedded:
            helpdesk.jobs.start_worker()
        try:
            yield
        finally:
            await ui.feed.close()
            await helpdesk.stop()

    ui = UiState.build(helpdesk)
    # Each plugin's routes behind a guard: they answer 404 once the plugin is disabled.
    plugin_routes: list[Any] = [
        Router(path="/", route_handlers=list(routes), guards=[plugin_enabled_guard(plugin)])
        for plugin, routes in helpdesk.hooks.collect("register_routes")
        if routes
    ]
    app = Litestar(
        route_handlers=[
            healthz,
            TicketController,
            AttachmentController,
            SystemController,
            MacroController,
            KnowledgeController,
            AutomationRuleController,
            NotificationController,
            OrganisationPreferenceController,
            DeliveryLogController,
            SatisfactionController,
            *ui_routes(),
            *plugin_routes,
        ],
        dependencies={
            "helpdesk": Provide(provide_helpdesk),
            "principal": Provide(provide_principal),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        before_request=follow_plugin_changes,
        openapi_config=OpenAPIConfig(title="TicketCore API", version=__version__, path="/schema"),
        debug=False,
    )
    app.state.helpdesk = helpdesk
    app.state.ui = ui
    return app

"""The application object: settings, database, plugins and services of one helpdesk."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pluggy

from ticketcore.clock import Clock
from ticketcore.config import Settings
from ticketcore.db.database import Database
from ticketcore.db.migrations import create_tables, migrate
from ticketcore.db.tables import ALL_TABLES
from ticketcore.errors import ConfigError
from ticketcore.hooks import Hooks
from ticketcore.jobs import JobHandler, JobQueue, core_job_handlers
from ticketcore.plugin_manager import LoadedPlugin, build_plugin_manager
from ticketcore.plugin_runtime import PluginRuntime

log = logging.getLogger("ticketcore")


class App:
    """One helpdesk: build with :func:`create_helpdesk`, then ``await start()``."""

    def __init__(
        self,
        settings: Settings,
        pm: pluggy.PluginManager,
        plugins: list[LoadedPlugin],
        clock: Clock | None = None,
    ) -> None:
        from ticketcore.services.agent_notifications import AgentNotificationService
        from ticketcore.services.auth import AuthService
        from ticketcore.services.automation import AutomationService
        from ticketcore.services.delivery_log import DeliveryLog
        from ticketcore.services.directory import DirectoryService
        from ticketcore.services.macros import MacroService
        from ticketcore.services.notification_prefs import NotificationPrefService
        from ticketcore.services.presence import PresenceService
        from ticketcore.services.routing_roster import RosterCache
        from ticketcore.services.satisfaction import SatisfactionService
        from ticketcore.services.saved_filters import SavedFilterService
        from ticketcore.services.sign_in_links import SignInLinkService
        from ticketcore.services.sla_timers import SlaTimers
        from ticketcore.services.tickets import TicketService

        #: The settings file's configuration; ``settings`` is it with the admins' plugin
        #: changes applied (see ``plugin_runtime``).
        self.base_settings = settings
        self.settings = settings
        #: Objects registered besides the configured plugins (the testing fixtures').
        self.extra_plugins: tuple[tuple[str, Any], ...] = ()
        self.pm = pm
        self.hooks = Hooks(pm)
        self.plugins = plugins
        self.clock = clock or Clock()
        self.db = Database(settings.database.url, pool_size=settings.database.pool_size)
        self.plugin_tables = [
            t for _, tables in self.hooks.collect("register_tables") for t in (tables or [])
        ]
        self.db.bind([*ALL_TABLES, *self.plugin_tables])
        self.jobs = JobQueue(self, self.job_handlers(self.hooks))
        self.sla_timers = SlaTimers(self)
        self.jobs.add_poller(self.sla_timers.poll)
        #: Enables, disables and reconfigures plugins at run time, following other processes.
        self.plugin_runtime = PluginRuntime(self)
        self.jobs.add_poller(self.plugin_runtime.poll)
        self.tickets = TicketService(self)
        self.auth = AuthService(self)
        self.directory = DirectoryService(self)
        self.macros = MacroService(self)
        self.automation = AutomationService(self)
        #: The routing snapshot kept between batches (checked against the database).
        self.routing_roster = RosterCache()
        #: Agents' in-app notifications (assigned, mentioned, SLA alerts).
        self.agent_notifications = AgentNotificationService(self)
        #: Organisations' choices of customer updates.
        self.notification_prefs = NotificationPrefService(self)
        #: Every attempt of the HTTP notifiers (webhook, chat) to deliver a notification.
        self.delivery_log = DeliveryLog(self)
        #: Requesters' satisfaction ratings of resolved and closed tickets.
        self.satisfaction = SatisfactionService(self)
        #: Customers' e-mailed, single-use sign-in links.
        self.sign_in_links = SignInLinkService(self)
        #: Which agents are on which ticket page now (heartbeats in the database).
        self.presence = PresenceService(self)
        #: Agents' saved filters of the ticket list.
        self.saved_filters = SavedFilterService(self)
        #: Whether plugins may open network listeners (the SMTP intake): ``ticketcore serve``
        #: sets it, so workers and one-off commands never compete for a port.
        self.listeners = False
        self._started = False

    @property
    def started(self) -> bool:
        """Whether ``start()`` ran (plugins' ``startup`` hooks included) and ``stop()`` not."""
        return self._started

    def job_handlers(self, hooks: Hooks) -> dict[str, JobHandler]:
        """The core job handlers plus those the plugins of ``hooks`` register."""
        from ticketcore.services.automation_engine import automation_job_handlers

        handlers: dict[str, JobHandler] = {**core_job_handlers(), **automation_job_handlers()}
        problems: list[str] = []
        for plugin, registered in hooks.collect("register_jobs"):
            for kind, handler in (registered or {}).items():
                if kind in handlers:
                    problems.append(f"{plugin}: job kind {kind!r} is already registered")
                handlers[kind] = handler
        if problems:
            raise ConfigError(problems)
        return handlers

    async def start(self, *, run_migrations: bool = True) -> None:
        """Connect, migrate (unless told not to) and run the plugins' ``startup`` hooks."""
        if self._started:
            return
        await self.db.start()
        if run_migrations:
            applied = await migrate(self.db, self.plugin_tables)
            for name in applied:
                log.info("applied migration %s", name)
        # The admins' plugin changes stored in the database (a broken one is logged and the
        # settings file's plugins start instead).
        if await self.plugin_runtime.refresh(force=True) and run_migrations:
            await create_tables(self.db, self.plugin_tables)
        outcomes = await self.hooks.broadcast("startup", app=self)
        failed = [f"{o.plugin}: startup failed: {o.error}" for o in outcomes if not o.ok]
        if failed:
            # Let the plugins that did start release what they took, then give up.
            started = {o.plugin for o in outcomes if o.ok}
            if started:
                await self.hooks.broadcast("shutdown", only=started, app=self)
            await self.db.close()
            raise ConfigError(failed)
        self._started = True

    async def stop(self) -> None:
        """Stop the worker, run ``shutdown`` hooks (isolated) and close the database."""
        await self.jobs.stop_worker()
        if self._started:
            await self.hooks.broadcast("shutdown", app=self)
        self._started = False
        await self.db.close()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def create_helpdesk(
    settings: Settings, *, clock: Clock | None = None, extra_plugins: Sequence[tuple[str, Any]] = ()
) -> App:
    """Build an application: load and validate plugins (raising one report of every
    problem), bind the database. Nothing is connected until ``start()``."""
    pm, plugins = build_plugin_manager(settings, extra_plugins)
    app = App(settings, pm, plugins, clock=clock)
    app.extra_plugins = tuple(extra_plugins)
    return app

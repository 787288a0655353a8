"""Changing the plugin set of a running helpdesk, and following changes made elsewhere.

An admin's change is validated by building the complete new plugin manager (every plugin's
own ``Config``, ``create()``, the hooks) before anything is stored; a broken configuration
never replaces a working one. Applying a change swaps the new manager into ``app.pm`` and
``app.hooks``, creates the tables of newly enabled plugins, runs their ``startup`` hooks and
the ``shutdown`` hooks of the plugins removed. A plugin whose settings did not change keeps
its object (and whatever it started). Other processes notice a change by polling one
version counter: the job worker on every round, the web app at most every
``max_age`` seconds per request.

Limits: HTTP routes and templates are collected when the web app is built. A plugin
disabled at run time has its routes answer 404 (a guard checks it is enabled); a plugin
enabled at run time that was not enabled when the server started gets its hooks at once,
but its routes and templates only after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import pluggy

from ticketcore.config import Settings
from ticketcore.db.migrations import create_tables
from ticketcore.errors import ConfigError
from ticketcore.hooks import Hooks
from ticketcore.jobs import JobHandler
from ticketcore.plugin_manager import LoadedPlugin, build_plugin_manager
from ticketcore.plugin_overrides import (
    PluginOverride,
    effective_settings,
    override_version,
    read_overrides,
    write_override,
)

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.plugins")


class PluginRuntime:
    """The plugin set of one process: applies stored overrides, validates and saves new ones."""

    def __init__(self, app: App, *, max_age: float = 2.0) -> None:
        self.app = app
        #: How long a web request may trust the last version check, in seconds.
        self.max_age = max_age
        #: The override version the running plugin set reflects (0: the settings file).
        self.version = 0
        #: Why the last stored change could not be applied here (None: it was).
        self.last_error: list[str] | None = None
        self.overrides: list[PluginOverride] = []
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    def is_enabled(self, qualified_name: str) -> bool:
        """Whether ``kind.name`` is in the running set."""
        return self.app.pm.get_plugin(qualified_name) is not None

    async def refresh(self, *, force: bool = False) -> bool:
        """Apply the stored overrides if they changed since the last check (checks at most
        every ``max_age`` seconds unless ``force``); True when the set was rebuilt."""
        if not force and time.monotonic() - self._checked_at < self.max_age:
            return False
        async with self._lock:
            if not force and time.monotonic() - self._checked_at < self.max_age:
                return False
            try:
                version = await override_version(self.app.db)
            except Exception:  # not migrated yet, or the database is away: try later
                log.debug("plugin override version unavailable", exc_info=True)
                self._checked_at = time.monotonic()
                return False
            self._checked_at = time.monotonic()
            if version == self.version:
                return False
            version, overrides = await read_overrides(self.app.db)
            try:
                await self._apply(overrides)
            except ConfigError as exc:
                # Keep the running set; do not retry the same broken version every round.
                log.error("plugin change %s not applied: %s", version, "; ".join(exc.problems))
                self.last_error = list(exc.problems)
            except Exception as exc:  # never let a plugin change take the helpdesk down
                log.exception("plugin change %s not applied", version)
                self.last_error = [f"{type(exc).__name__}: {exc}"]
            else:
                self.last_error = None
                self.overrides = overrides
            self.version = version
            return self.last_error is None

    async def poll(self) -> int:
        """Job-worker poller: follow changes made elsewhere (runs no jobs, returns 0)."""
        await self.refresh()
        return 0

    def validate(self, overrides: list[PluginOverride]) -> Settings:
        """The effective settings with ``overrides``; ConfigError if the plugin set they
        describe cannot be built (every problem listed)."""
        settings = effective_settings(self.app.base_settings, overrides)
        build_plugin_manager(settings, self.app.extra_plugins)
        return settings

    async def save(self, change: PluginOverride, actor: int | None = None) -> int:
        """Validate, store and apply one plugin's change; ConfigError (nothing stored, the
        running set kept) when the resulting plugin set is invalid or fails to start."""
        async with self._lock:
            _, current = await read_overrides(self.app.db)
            others = [o for o in current if o.qualified_name != change.qualified_name]
            previous = next((o for o in current if o.qualified_name == change.qualified_name), None)
            wanted = [*others, change]
            self.validate(wanted)
            await write_override(self.app.db, change, actor)
            # Apply what is stored now: it includes changes another process stored meanwhile
            # (applying only ``wanted`` could leave this process behind at the newer version).
            version, stored = await read_overrides(self.app.db)
            try:
                await self._apply(stored)
            except BaseException:
                restore = previous or PluginOverride(kind=change.kind, name=change.name)
                await write_override(self.app.db, restore, actor)
                self.version = -1  # re-read at the next refresh: others may have changed too
                raise
            self.overrides, self.version, self.last_error = stored, version, None
            self._checked_at = time.monotonic()
            return version

    async def _apply(self, overrides: list[PluginOverride]) -> None:
        """Build the plugin set the overrides describe and swap it in (see the module)."""
        app = self.app
        settings = effective_settings(app.base_settings, overrides)
        old_plugins = {p.qualified_name: p for p in app.plugins}
        pm, loaded = build_plugin_manager(settings, app.extra_plugins, keep=old_plugins)
        hooks = Hooks(pm)
        handlers = app.job_handlers(hooks)
        tables = [t for _, found in hooks.collect("register_tables") for t in (found or [])]
        kept = {id(p.obj) for p in loaded}
        added = {p.qualified_name for p in loaded if id(p.obj) not in _ids(app.plugins)}
        removed = {p.qualified_name for p in app.plugins if id(p.obj) not in kept}
        app.db.bind(tables)
        if not app.started:
            self._swap(pm, loaded, settings, tables, handlers)
            return
        new_tables = [t for t in tables if t not in app.plugin_tables]
        if new_tables:
            app.db.bind(new_tables)
            await create_tables(app.db, new_tables)
        old = (app.pm, app.plugins, app.settings, app.plugin_tables, app.jobs.handlers)
        old_hooks = Hooks(app.pm)
        self._swap(pm, loaded, settings, tables, handlers)
        if added:
            outcomes = await app.hooks.broadcast("startup", only=added, app=app)
            failed = [f"{o.plugin}: startup failed: {o.error}" for o in outcomes if not o.ok]
            if failed:
                started = {o.plugin for o in outcomes if o.ok}
                if started:
                    await app.hooks.broadcast("shutdown", only=started, app=app)
                self._swap(*old)
                raise ConfigError(failed)
        if removed:
            await old_hooks.broadcast("shutdown", only=removed, app=app)
        log.info(
            "plugins changed: enabled %s, disabled %s",
            ", ".join(sorted(added)) or "none",
            ", ".join(sorted(removed)) or "none",
        )

    def _swap(
        self,
        pm: pluggy.PluginManager,
        loaded: list[LoadedPlugin],
        settings: Settings,
        tables: list[type],
        handlers: dict[str, JobHandler],
    ) -> None:
        app = self.app
        app.pm = pm
        app.hooks.pm = pm  # in place: services holding ``app.hooks`` see the new set
        app.plugins = loaded
        app.settings = settings
        app.plugin_tables = tables
        app.jobs.handlers = handlers


def _ids(plugins: list[LoadedPlugin]) -> set[int]:
    return {id(p.obj) for p in plugins}

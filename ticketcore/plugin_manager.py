"""Build the plugin manager of one application from its settings.

stevedore loads, per entry-point namespace, only the plugins the settings enable, in config
order; each is validated and registered into one pluggy manager. Every problem found
(unknown name, import error, duplicate, bad settings, misspelled hook) is collected, and
start-up stops with one report naming each.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pluggy
from stevedore import NamedExtensionManager
from stevedore.extension import Extension

from ticketcore import hookspecs
from ticketcore.config import NAMESPACES, Settings, redact
from ticketcore.errors import ConfigError


@dataclass
class LoadedPlugin:
    """A plugin that is enabled, imported, configured and registered."""

    kind: str
    name: str
    module: str
    distribution: str
    version: str
    description: str
    config: Any
    raw_config: dict[str, Any]
    obj: Any = field(repr=False)
    hooks: list[str] = field(default_factory=list)

    @property
    def qualified_name(self) -> str:
        """``kind.name``, the name this plugin is registered under in pluggy."""
        return f"{self.kind}.{self.name}"


@dataclass
class InstalledPlugin:
    """An entry point found in the environment, enabled or not (never imported here)."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str


def installed_plugins() -> list[InstalledPlugin]:
    """Every plugin entry point installed, read from metadata without importing anything."""
    found: list[InstalledPlugin] = []
    for kind, namespace in NAMESPACES.items():
        for ep in importlib.metadata.entry_points(group=namespace):
            dist = ep.dist
            found.append(
                InstalledPlugin(
                    kind=kind,
                    name=ep.name,
                    target=ep.value,
                    distribution=dist.metadata["Name"] if dist else "?",
                    version=dist.version if dist else "?",
                )
            )
    return sorted(found, key=lambda p: (p.kind, p.name, p.distribution))


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty pluggy manager that knows the TicketCore hook contract."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _describe(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _plugin_config(obj: Any, raw: dict[str, Any], where: str, problems: list[str]) -> Any:
    """Validate a plugin's raw settings against its ``Config`` struct, if it has one."""
    config_type = getattr(obj, "Config", None)
    if config_type is None:
        if raw:
            problems.append(f"{where}: takes no settings, got {', '.join(sorted(raw))}")
        return None
    known = set(config_type.__struct_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        problems.append(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known)) or 'none'}"
        )
        return None
    try:
        return msgspec.convert(raw, config_type)
    except msgspec.ValidationError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _hook_names(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(caller.name for caller in callers)


def build_plugin_manager(
    settings: Settings, extra_plugins: Sequence[tuple[str, Any]] = ()
) -> tuple[pluggy.PluginManager, list[LoadedPlugin]]:
    """Load, validate and register the enabled plugins; raise ConfigError listing problems.

    ``extra_plugins`` are ``(name, object)`` pairs registered besides the configured ones
    and called after them: the testing fixtures use it. Returns the manager and the loaded plugins
    in config order.
    """
    problems: list[str] = []
    loaded: list[LoadedPlugin] = []
    secret_paths = set(settings.secret_paths)
    for kind, namespace in NAMESPACES.items():
        names: list[str] = getattr(settings.plugins, kind)
        if not names:
            continue
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"plugins.{kind}: listed twice: {', '.join(duplicates)}")

        def on_failure(_mgr: Any, ep: Any, exc: Exception, kind: str = kind) -> None:
            problems.append(
                f"{kind}.{ep.name}: failed to load {ep.value}: {type(exc).__name__}: {exc}"
            )

        def on_missing(missing: Any, kind: str = kind) -> None:
            for name in sorted(missing):
                problems.append(
                    f"{kind}.{name}: enabled in settings but not installed "
                    f"(no entry point {name!r} in {NAMESPACES[kind]})"
                )

        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            namespace,
            names=list(dict.fromkeys(names)),
            name_order=True,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=on_missing,
        )
        by_name: dict[str, list[Extension[Any]]] = {}
        for ext in manager.extensions:
            by_name.setdefault(ext.name, []).append(ext)
        for name, exts in by_name.items():
            if len(exts) > 1:
                sources = ", ".join(f"{e.entry_point.value}" for e in exts)
                problems.append(f"{kind}.{name}: provided more than once ({sources})")
                continue
            ext = exts[0]
            where = f"plugin.{kind}.{name}"
            raw = settings.plugin_config(kind, name)
            config = _plugin_config(ext.plugin, raw, where, problems)
            if config is None and getattr(ext.plugin, "Config", None) is not None:
                continue
            try:
                obj = ext.plugin.create(config) if hasattr(ext.plugin, "create") else ext.plugin
            except Exception as exc:
                problems.append(f"{kind}.{name}: create() failed: {type(exc).__name__}: {exc}")
                continue
            dist = ext.entry_point.dist
            loaded.append(
                LoadedPlugin(
                    kind=kind,
                    name=name,
                    module=ext.entry_point.value,
                    distribution=dist.metadata["Name"] if dist else "?",
                    version=dist.version if dist else "?",
                    description=_describe(ext.plugin),
                    config=config,
                    raw_config=redact(raw, where, secret_paths),
                    obj=obj,
                )
            )

    pm = new_plugin_manager()
    # pluggy calls the last registered first: register in reverse so calls follow config.
    for name, obj in reversed(list(extra_plugins)):
        _register(pm, obj, name, problems)
    for plugin in reversed(loaded):
        _register(pm, plugin.obj, plugin.qualified_name, problems)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        problems.append(f"{exc.plugin_name if hasattr(exc, 'plugin_name') else '?'}: {exc}")
    if problems:
        raise ConfigError(problems)
    for plugin in loaded:
        plugin.hooks = _hook_names(pm, plugin.obj)
    pm.hook.configure.call_historic(kwargs={"settings": settings})
    return pm, loaded


def _register(pm: pluggy.PluginManager, obj: Any, name: str, problems: list[str]) -> None:
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        problems.append(f"{name}: cannot register: {exc}")

"""Build the plugin manager of one application from its settings.

stevedore loads, per entry-point namespace, only the plugins the settings enable, in config
order; each is validated and registered into one pluggy manager. Every problem found
(unknown name, import error, duplicate, bad settings, misspelled hook) is collected, and
start-up stops with one report naming each.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Mapping, Sequence
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


class _EntryPointManager(NamedExtensionManager[Any]):
    """stevedore's named manager, reading entry points fresh from the installed metadata.

    stevedore caches entry-point scans twice: per namespace for the whole process
    (``ExtensionManager.ENTRY_POINT_CACHE``, never invalidated, so a plugin installed or
    added to ``sys.path`` after a first scan stayed invisible) and on disk under
    ``$XDG_CACHE_HOME``. Its cached ``EntryPoint`` objects also lose their distribution
    (``ep.dist`` is None), which made every plugin's distribution and version show as "?".
    A scan per kind at start-up is cheap, and sees exactly what ``installed_plugins()`` sees.
    """

    def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
        """Entry points of this namespace, sorted by name so that stevedore hands every
        duplicated name to the conflict resolver (it only groups neighbours)."""
        found = importlib.metadata.entry_points(group=self.namespace)
        return sorted(found, key=lambda ep: ep.name)


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


def _settings_for_unknown_plugins(settings: Settings) -> list[str]:
    """Settings tables naming a plugin that is not installed: almost always a typo.

    Settings of an installed but disabled plugin are fine (an admin may switch it off and
    keep its settings); the check reads metadata only, so nothing is imported.
    """
    problems = []
    for kind, tables in settings.plugin.items():
        namespace = NAMESPACES.get(kind)
        if namespace is None:
            continue  # reported by the settings validation
        installed = {ep.name for ep in importlib.metadata.entry_points(group=namespace)}
        for name in sorted(set(tables) - installed):
            problems.append(
                f"plugin.{kind}.{name}: settings for a plugin that is not installed "
                f"(no entry point {name!r} in {namespace})"
            )
    return problems


def build_plugin_manager(
    settings: Settings,
    extra_plugins: Sequence[tuple[str, Any]] = (),
    keep: Mapping[str, LoadedPlugin] | None = None,
) -> tuple[pluggy.PluginManager, list[LoadedPlugin]]:
    """Load, validate and register the enabled plugins; raise ConfigError listing problems.

    ``extra_plugins`` are ``(name, object)`` pairs registered besides the configured ones
    and called after them: the testing fixtures use it. ``keep`` maps qualified names to
    plugins of a running set: one whose validated settings are unchanged is reused (its
    object, already started) instead of created again. Returns the manager and the loaded
    plugins in config order.
    """
    problems: list[str] = []
    loaded: list[LoadedPlugin] = []
    secret_paths = set(settings.secret_paths)
    problems += _settings_for_unknown_plugins(settings)
    for kind, namespace in NAMESPACES.items():
        names: list[str] = getattr(settings.plugins, kind)
        if not names:
            continue
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"plugins.{kind}: listed twice: {', '.join(duplicates)}")

        failed: set[str] = set()
        conflicting: set[str] = set()

        def on_failure(
            _mgr: Any, ep: Any, exc: BaseException, kind: str = kind, failed: set[str] = failed
        ) -> None:
            failed.add(ep.name)
            problems.append(
                f"{kind}.{ep.name}: failed to load {ep.value}: {type(exc).__name__}: {exc}"
            )

        def on_missing(missing: Any, kind: str = kind, failed: set[str] = failed) -> None:
            # stevedore counts a plugin that failed to import as missing too: it is already
            # reported by on_failure, so report only the names that are really not installed.
            for name in sorted(set(missing) - failed):
                problems.append(
                    f"{kind}.{name}: enabled in settings but not installed "
                    f"(no entry point {name!r} in {NAMESPACES[kind]})"
                )

        def on_conflict(
            _namespace: str,
            name: str,
            exts: list[Extension[Any]],
            kind: str = kind,
            conflicting: set[str] = conflicting,
        ) -> Extension[Any]:
            # stevedore's default silently keeps one of the duplicates.
            conflicting.add(name)
            sources = ", ".join(f"{e.entry_point.value} ({_dist_name(e)})" for e in exts)
            problems.append(f"{kind}.{name}: provided more than once: {sources}")
            return exts[0]

        manager = _EntryPointManager(
            namespace,
            names=list(dict.fromkeys(names)),
            name_order=True,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=on_missing,
            conflict_resolver=on_conflict,
        )
        for ext in manager.extensions:
            name = ext.name
            if name in conflicting:
                continue
            where = f"plugin.{kind}.{name}"
            raw = settings.plugin_config(kind, name)
            config = _plugin_config(ext.plugin, raw, where, problems)
            if config is None and getattr(ext.plugin, "Config", None) is not None:
                continue
            previous = (keep or {}).get(f"{kind}.{name}")
            try:
                if previous is not None and previous.config == config:
                    obj = previous.obj
                elif hasattr(ext.plugin, "create"):
                    obj = ext.plugin.create(config)
                else:
                    obj = ext.plugin
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
    problems.extend(_unknown_hooks(pm))
    if problems:
        raise ConfigError(problems)
    for plugin in loaded:
        plugin.hooks = _hook_names(pm, plugin.obj)
    pm.hook.configure.call_historic(kwargs={"settings": settings})
    return pm, loaded


def _dist_name(ext: Extension[Any]) -> str:
    dist = ext.entry_point.dist
    return str(dist.metadata["Name"]) if dist else "?"


def _unknown_hooks(pm: pluggy.PluginManager) -> list[str]:
    """What ``pm.check_pending()`` checks (implementations of hooks that have no spec, e.g.
    misspelled), but reporting every one, named by plugin, instead of raising at the first
    with the plugin object's repr."""
    found: list[str] = []
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                found.append(f"{impl.plugin_name}: implements unknown hook {name!r} (misspelled?)")
    return found


def _register(pm: pluggy.PluginManager, obj: Any, name: str, problems: list[str]) -> None:
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        problems.append(f"{name}: cannot register: {exc}")

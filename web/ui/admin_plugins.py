"""``/admin/plugins``: installed plugins, enabling and disabling them, editing their settings.

Changes are stored as overrides of the settings file and applied at once in this process
(other processes follow within seconds); see ``ticketcore.plugin_runtime``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath

from ticketcore.config import NAMESPACES
from ticketcore.errors import ConfigError, NotFound
from ticketcore.plugin_manager import installed_plugins
from ticketcore.plugin_overrides import PluginOverride
from ticketcore.web.ui.admin_plugin_form import (
    field_of,
    plugin_module,
    read_settings_form,
    setting_fields,
)
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import text


def _installed(kind: str, name: str) -> None:
    if kind not in NAMESPACES or not any(
        p.kind == kind and p.name == name for p in installed_plugins()
    ):
        raise NotFound(f"no installed plugin {kind}.{name}")


def _override(viewer: Viewer, kind: str, name: str) -> PluginOverride | None:
    wanted = f"{kind}.{name}"
    runtime = viewer.helpdesk.plugin_runtime
    return next((o for o in runtime.overrides if o.qualified_name == wanted), None)


class AdminPluginController(Controller):
    """Admins only."""

    path = "/admin/plugins"
    include_in_schema = False

    @get("/")
    async def plugins(self, viewer: ViewerDep) -> Response[Any]:
        """Installed plugins; enabled ones with description, hooks and (masked) settings."""
        viewer.require_admin()
        helpdesk = viewer.helpdesk
        await helpdesk.plugin_runtime.refresh(force=True)
        loaded = {(p.kind, p.name): p for p in helpdesk.plugins}
        overridden = {(o.kind, o.name) for o in helpdesk.plugin_runtime.overrides}
        rows = [
            {
                "installed": item,
                "loaded": loaded.get((item.kind, item.name)),
                "overridden": (item.kind, item.name) in overridden,
            }
            for item in installed_plugins()
        ]
        return viewer.page(
            "admin/plugins.html", rows=rows, runtime_error=helpdesk.plugin_runtime.last_error
        )

    @post("/{kind:str}/{name:str}/enabled")
    async def set_enabled(
        self, kind: FromPath[str], name: FromPath[str], viewer: ViewerDep
    ) -> Response[Any]:
        """Enable (``enabled=1``) or disable (``enabled=0``) a plugin, at once."""
        principal = viewer.require_admin()
        form = await viewer.form()
        _installed(kind, name)
        previous = _override(viewer, kind, name)
        change = PluginOverride(
            kind=kind,
            name=name,
            enabled=text(form, "enabled") == "1",
            settings=previous.settings if previous else None,
        )
        try:
            await viewer.helpdesk.plugin_runtime.save(change, principal.id)
        except ConfigError as exc:
            return viewer.redirect("/admin/plugins", error="; ".join(exc.problems))
        done = "plugin_enabled" if change.enabled else "plugin_disabled"
        return viewer.redirect("/admin/plugins", done=done)

    @post("/{kind:str}/{name:str}/reset")
    async def reset(
        self, kind: FromPath[str], name: FromPath[str], viewer: ViewerDep
    ) -> Response[Any]:
        """Forget the admins' changes to a plugin: the settings file decides again."""
        principal = viewer.require_admin()
        await viewer.form()
        _installed(kind, name)
        try:
            await viewer.helpdesk.plugin_runtime.save(
                PluginOverride(kind=kind, name=name), principal.id
            )
        except ConfigError as exc:
            return viewer.redirect("/admin/plugins", error="; ".join(exc.problems))
        return viewer.redirect("/admin/plugins", done="plugin_reset")

    @get("/{kind:str}/{name:str}")
    async def settings_page(
        self, kind: FromPath[str], name: FromPath[str], viewer: ViewerDep
    ) -> Response[Any]:
        """The plugin's settings form."""
        viewer.require_admin()
        _installed(kind, name)
        await viewer.helpdesk.plugin_runtime.refresh(force=True)
        return self._form(viewer, kind, name, errors={}, submitted=None)

    @post("/{kind:str}/{name:str}")
    async def save_settings(
        self, kind: FromPath[str], name: FromPath[str], viewer: ViewerDep
    ) -> Response[Any]:
        """Validate and save the settings; on any error nothing is saved and the form comes
        back with each error next to its field."""
        principal = viewer.require_admin()
        form = await viewer.form()
        _installed(kind, name)
        module = plugin_module(kind, name)
        if module is None:
            raise NotFound(f"plugin {kind}.{name} cannot be imported")
        helpdesk = viewer.helpdesk
        previous = _override(viewer, kind, name)
        submitted = {k: v for k, v in form.items() if isinstance(v, str)}
        settings, errors = read_settings_form(
            module, submitted, helpdesk.base_settings, kind, name, previous
        )
        if not errors:
            enabled = previous.enabled if previous else None
            change = PluginOverride(kind=kind, name=name, enabled=enabled, settings=settings)
            try:
                await helpdesk.plugin_runtime.save(change, principal.id)
            except ConfigError as exc:
                names = [f.name for f in setting_fields(module, helpdesk.settings, kind, name)]
                for problem in exc.problems:
                    key = field_of(problem, names)
                    errors[key] = f"{errors[key]}; {problem}" if key in errors else problem
            else:
                return viewer.redirect(f"/admin/plugins/{kind}/{name}", done="plugin_saved")
        return self._form(viewer, kind, name, errors=errors, submitted=submitted, status=422)

    @staticmethod
    def _form(
        viewer: Viewer,
        kind: str,
        name: str,
        *,
        errors: dict[str, str],
        submitted: dict[str, str] | None,
        status: int = 200,
    ) -> Response[Any]:
        helpdesk = viewer.helpdesk
        module = plugin_module(kind, name)
        fields = setting_fields(module, helpdesk.settings, kind, name) if module else []
        loaded = next((p for p in helpdesk.plugins if (p.kind, p.name) == (kind, name)), None)
        return viewer.page(
            "admin/plugin_settings.html",
            status_code=status,
            kind=kind,
            name=name,
            loaded=loaded,
            importable=module is not None,
            fields=fields,
            submitted=submitted or {},
            errors=errors,
        )

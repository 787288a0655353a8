"""``/admin/macros``: canned responses; list (active and deactivated), create, edit,
deactivate and reactivate."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath

from ticketcore.domain.commands import NewMacro
from ticketcore.domain.enums import Priority
from ticketcore.domain.lifecycle import TRANSITIONS
from ticketcore.errors import TicketCoreError
from ticketcore.services.macros import MacroInfo
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import tags, text

FIELDS = ("name", "body", "set_priority", "set_category", "add_tags", "transition")
PLACEHOLDERS = "{{ ticket.number }}, {{ ticket.subject }}, {{ requester.name }}, {{ agent.name }}"


def form_values(macro: MacroInfo | None) -> dict[str, str]:
    """The form's text values for a macro (empty for a new one)."""
    if macro is None:
        return dict.fromkeys((*FIELDS, "internal"), "")
    return {
        "name": macro.name,
        "body": macro.body,
        "internal": "1" if macro.internal else "",
        "set_priority": macro.set_priority.value if macro.set_priority else "",
        "set_category": macro.set_category or "",
        "add_tags": ", ".join(macro.add_tags),
        "transition": macro.transition or "",
    }


def read_macro_form(form: FormMultiDict) -> tuple[dict[str, str], NewMacro | None, dict[str, str]]:
    """The submitted values, the macro they describe (None when invalid), errors by field."""
    values = {name: text(form, name) for name in FIELDS}
    values["body"] = form.get("body") if isinstance(form.get("body"), str) else ""
    values["internal"] = "1" if text(form, "internal") else ""
    data = {
        "name": values["name"],
        "body": values["body"],
        "internal": bool(values["internal"]),
        "set_priority": values["set_priority"] or None,
        "set_category": values["set_category"] or None,
        "add_tags": tags(form, "add_tags"),
        "transition": values["transition"] or None,
    }
    try:
        return values, msgspec.convert(data, NewMacro), {}
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = next((f for f in FIELDS if f"`$.{f}`" in message), "")
        return values, None, {field: message}


class AdminMacroController(Controller):
    """Admins only."""

    path = "/admin/macros"
    include_in_schema = False

    @get("/")
    async def macros(self, viewer: ViewerDep) -> Response[Any]:
        """Every canned response by name, deactivated ones included."""
        principal = viewer.require_admin()
        rows = await viewer.helpdesk.macros.list_all(principal)
        return viewer.page("admin/macros.html", macros=rows)

    @get("/new")
    async def new_macro(self, viewer: ViewerDep) -> Response[Any]:
        """An empty form."""
        viewer.require_admin()
        return _form(viewer, None, form_values(None), {})

    @post("/")
    async def create_macro(self, viewer: ViewerDep) -> Response[Any]:
        """Create a canned response; on an error nothing is stored."""
        principal = viewer.require_admin()
        values, cmd, errors = read_macro_form(await viewer.form())
        if cmd is not None:
            try:
                await viewer.helpdesk.macros.create(principal, cmd)
            except TicketCoreError as exc:
                errors = {_field(exc): exc.message}
            else:
                return viewer.redirect("/admin/macros", done="macro_saved")
        return _form(viewer, None, values, errors, status=422)

    @get("/{macro_id:int}")
    async def edit_macro(self, macro_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One canned response's form."""
        principal = viewer.require_admin()
        macro, _ = await viewer.helpdesk.macros.get_any(principal, macro_id)
        return _form(viewer, macro_id, form_values(macro), {})

    @post("/{macro_id:int}")
    async def update_macro(self, macro_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Replace a canned response."""
        principal = viewer.require_admin()
        values, cmd, errors = read_macro_form(await viewer.form())
        if cmd is not None:
            try:
                await viewer.helpdesk.macros.update(principal, macro_id, cmd)
            except TicketCoreError as exc:
                errors = {_field(exc): exc.message}
            else:
                return viewer.redirect("/admin/macros", done="macro_saved")
        return _form(viewer, macro_id, values, errors, status=422)

    @post("/{macro_id:int}/active")
    async def set_active(self, macro_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Deactivate (``active=``) or reactivate (``active=1``)."""
        principal = viewer.require_admin()
        form = await viewer.form()
        await viewer.helpdesk.macros.set_active(principal, macro_id, text(form, "active") == "1")
        return viewer.redirect("/admin/macros", done="saved")


def _field(exc: TicketCoreError) -> str:
    field = getattr(exc, "field", None) or ""
    return field if field in FIELDS else ""


def _form(
    viewer: Viewer,
    macro_id: int | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response[Any]:
    return viewer.page(
        "admin/macro_form.html",
        status_code=status,
        macro_id=macro_id,
        values=values,
        errors=errors,
        priorities=[p.value for p in Priority],
        transitions=list(TRANSITIONS),
        placeholders=PLACEHOLDERS,
    )

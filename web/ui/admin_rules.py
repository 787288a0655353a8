"""``/admin/rules``: automation rules in run order; create, edit (conditions and actions as
validated JSON, each error next to its field), enable or disable, move up or down."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath

from ticketcore.domain.automation import Reorder, Rule, RuleInput
from ticketcore.errors import TicketCoreError
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import text

#: The fields of the rule form, in order.
FIELDS = ("name", "trigger", "events", "after_minutes", "since", "conditions", "actions")
_AT = re.compile(r"`\$\.([a-z_]+)")


def form_values(rule: Rule | None) -> dict[str, str]:
    """The form's text values for a rule (or a new rule's defaults)."""
    if rule is None:
        return {
            "name": "",
            "trigger": "event",
            "events": "",
            "after_minutes": "",
            "since": "status",
            "conditions": "[]",
            "actions": "[]",
            "enabled": "1",
            "version": "",
        }
    as_json = msgspec.to_builtins
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "events": ", ".join(rule.events),
        "after_minutes": "" if rule.after_minutes is None else str(rule.after_minutes),
        "since": rule.since,
        "conditions": json.dumps(as_json(rule.conditions), indent=2, ensure_ascii=False),
        "actions": json.dumps(as_json(rule.actions), indent=2, ensure_ascii=False),
        "enabled": "1" if rule.enabled else "",
        "version": str(rule.version),
    }


def read_rule_form(form: FormMultiDict) -> tuple[dict[str, str], RuleInput | None, dict[str, str]]:
    """The submitted values, the rule they describe (None when invalid) and the errors by
    field (``""``: the whole form)."""
    values = {name: text(form, name) for name in (*FIELDS, "version")}
    values["enabled"] = "1" if text(form, "enabled") else ""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "name": values["name"],
        "trigger": values["trigger"] or "event",
        "enabled": bool(values["enabled"]),
        "since": values["since"] or "status",
        "events": [e.strip() for e in values["events"].split(",") if e.strip()],
    }
    if values["after_minutes"]:
        try:
            data["after_minutes"] = int(values["after_minutes"])
        except ValueError:
            errors["after_minutes"] = "must be a whole number of minutes"
    if values["version"].isdigit():
        data["version"] = int(values["version"])
    for name in ("conditions", "actions"):
        try:
            data[name] = json.loads(values[name] or "[]")
        except json.JSONDecodeError as exc:
            errors[name] = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if errors:
        return values, None, errors
    try:
        return values, msgspec.convert(data, RuleInput), {}
    except msgspec.ValidationError as exc:
        found = _AT.search(str(exc))
        field = found.group(1) if found and found.group(1) in FIELDS else ""
        return values, None, {field: str(exc)}


def error_field(exc: TicketCoreError) -> str:
    """The form field a service error is about (``conditions[0].op`` is ``conditions``)."""
    name = re.split(r"[.\[]", getattr(exc, "field", None) or "", maxsplit=1)[0]
    return name if name in FIELDS else ""


class AdminRuleController(Controller):
    """Admins only."""

    path = "/admin/rules"
    include_in_schema = False

    @get("/")
    async def rules(self, viewer: ViewerDep) -> Response[Any]:
        """Every rule in run order."""
        principal = viewer.require_admin()
        rules = await viewer.helpdesk.automation.list(principal)
        return viewer.page("admin/rules.html", rules=rules)

    @get("/new")
    async def new_rule(self, viewer: ViewerDep) -> Response[Any]:
        """An empty rule form."""
        viewer.require_admin()
        return _form(viewer, None, form_values(None), {})

    @post("/")
    async def create_rule(self, viewer: ViewerDep) -> Response[Any]:
        """Create a rule (last in order); on an error nothing is stored."""
        principal = viewer.require_admin()
        values, cmd, errors = read_rule_form(await viewer.form())
        if cmd is not None:
            try:
                await viewer.helpdesk.automation.create(principal, cmd)
            except TicketCoreError as exc:
                errors = {error_field(exc): exc.message}
            else:
                return viewer.redirect("/admin/rules", done="rule_saved")
        return _form(viewer, None, values, errors, status=422)

    @get("/{rule_id:int}")
    async def edit_rule(self, rule_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One rule's form."""
        principal = viewer.require_admin()
        rule = await viewer.helpdesk.automation.get(principal, rule_id)
        return _form(viewer, rule_id, form_values(rule), {})

    @post("/{rule_id:int}")
    async def update_rule(self, rule_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Replace a rule (refused when someone changed it since the form was opened)."""
        principal = viewer.require_admin()
        values, cmd, errors = read_rule_form(await viewer.form())
        if cmd is not None:
            try:
                await viewer.helpdesk.automation.update(principal, rule_id, cmd)
            except TicketCoreError as exc:
                errors = {error_field(exc): exc.message}
            else:
                return viewer.redirect("/admin/rules", done="rule_saved")
        return _form(viewer, rule_id, values, errors, status=422)

    @post("/{rule_id:int}/enabled")
    async def set_enabled(self, rule_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Switch a rule on (``enabled=1``) or off."""
        principal = viewer.require_admin()
        form = await viewer.form()
        await viewer.helpdesk.automation.set_enabled(
            principal, rule_id, text(form, "enabled") == "1"
        )
        return viewer.redirect("/admin/rules", done="saved")

    @post("/{rule_id:int}/move")
    async def move(self, rule_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Move a rule one place up (``direction=up``) or down."""
        principal = viewer.require_admin()
        form = await viewer.form()
        automation = viewer.helpdesk.automation
        ids = [r.id for r in await automation.list(principal)]
        if rule_id in ids:
            at = ids.index(rule_id)
            to = at - 1 if text(form, "direction") == "up" else at + 1
            if 0 <= to < len(ids):
                ids[at], ids[to] = ids[to], ids[at]
                await automation.reorder(principal, Reorder(ids=ids))
        return viewer.redirect("/admin/rules", done="rule_moved")


def _form(
    viewer: Viewer,
    rule_id: int | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response[Any]:
    return viewer.page(
        "admin/rule_form.html", status_code=status, rule_id=rule_id, values=values, errors=errors
    )

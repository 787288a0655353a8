"""``/admin/categories``: the ticket categories offered in the portal and on the agent's
ticket page; create, edit (labels, order) and deactivate them (admins only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath

from ticketcore.errors import TicketCoreError
from ticketcore.services.categories import CategoryInfo, CategoryInput, CategoryService
from ticketcore.web.ui.context import Viewer, ViewerDep
from ticketcore.web.ui.forms import optional_int, text

FIELDS = ("slug", "name", "label_en", "label_fr", "position")


def form_values(category: CategoryInfo | None) -> dict[str, str]:
    """The form's text values for a category (a new one is active, position 0)."""
    if category is None:
        return {**dict.fromkeys(FIELDS, ""), "position": "0", "active": "1"}
    return {
        "slug": category.slug,
        "name": category.name,
        "label_en": category.label_en or "",
        "label_fr": category.label_fr or "",
        "position": str(category.position),
        "active": "1" if category.active else "",
    }


def submitted_values(form: FormMultiDict) -> dict[str, str]:
    """The submitted text values, to show again when the form has an error."""
    values = {name: text(form, name) for name in FIELDS}
    values["active"] = "1" if text(form, "active") else ""
    return values


def read_form(form: FormMultiDict, values: dict[str, str]) -> CategoryInput:
    """The category the submitted values describe (the position must be a number)."""
    return CategoryInput(
        slug=values["slug"],
        name=values["name"],
        label_en=values["label_en"] or None,
        label_fr=values["label_fr"] or None,
        active=bool(values["active"]),
        position=optional_int(form, "position") or 0,
    )


class AdminCategoryController(Controller):
    """Admins only."""

    path = "/admin/categories"
    include_in_schema = False

    @get("/")
    async def categories(self, viewer: ViewerDep) -> Response[Any]:
        """Every category in order, inactive ones included, and the new-category form."""
        viewer.require_admin()
        return await _page(viewer, None, form_values(None), {})

    @post("/")
    async def create_category(self, viewer: ViewerDep) -> Response[Any]:
        """Add a category; on an error nothing is stored and the form shows why."""
        viewer.require_admin()
        form = await viewer.form()
        values = submitted_values(form)
        try:
            await CategoryService(viewer.helpdesk).create(read_form(form, values))
        except TicketCoreError as exc:
            return await _page(viewer, None, values, {_field(exc): exc.message}, status=422)
        return viewer.redirect("/admin/categories", done="category_saved")

    @get("/{category_id:int}")
    async def edit_category(self, category_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One category's form."""
        viewer.require_admin()
        category = await CategoryService(viewer.helpdesk).get(category_id)
        return await _page(viewer, category_id, form_values(category), {})

    @post("/{category_id:int}")
    async def update_category(self, category_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """Replace a category's fields (tickets keep the category they have)."""
        viewer.require_admin()
        form = await viewer.form()
        values = submitted_values(form)
        try:
            await CategoryService(viewer.helpdesk).update(category_id, read_form(form, values))
        except TicketCoreError as exc:
            return await _page(viewer, category_id, values, {_field(exc): exc.message}, 422)
        return viewer.redirect("/admin/categories", done="category_saved")


def _field(exc: TicketCoreError) -> str:
    return exc.field if exc.field in FIELDS else ""


async def _page(
    viewer: Viewer,
    category_id: int | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response[Any]:
    return viewer.page(
        "admin/categories.html",
        status_code=status,
        categories=await CategoryService(viewer.helpdesk).list(),
        category_id=category_id,
        values=values,
        errors=errors,
    )

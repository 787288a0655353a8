"""The category choices of the pages: the active categories an admin defined (labelled in
the viewer's language), or None when none is defined (the pages then keep their older,
free behaviour)."""

from __future__ import annotations

from ticketcore.errors import ValidationFailed
from ticketcore.services.categories import CategoryService
from ticketcore.web.ui.context import Viewer


async def category_choices(viewer: Viewer) -> list[tuple[str, str]] | None:
    """``(slug, label)`` of the active categories in order; None when none is defined."""
    defined = await CategoryService(viewer.helpdesk).list(active_only=True)
    if not defined:
        return None
    return [(c.slug, c.label(viewer.language)) for c in defined]


def check_category(
    value: str | None, choices: list[tuple[str, str]] | None, current: str | None
) -> str | None:
    """``value`` when it may be set: no categories defined, empty, an active category, or
    the ticket's current (possibly older free-text) category; else a validation error."""
    if not value or choices is None or value == current:
        return value or None
    if value not in {slug for slug, _ in choices}:
        raise ValidationFailed(f"unknown category {value!r}", field="category")
    return value

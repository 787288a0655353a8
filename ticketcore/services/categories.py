"""Ticket categories managed by admins: the choices offered when a ticket is opened or
edited. A ticket stores the category's slug as text, so old free-text categories stay."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from ticketcore.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from ticketcore.app import App

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class CategoryInfo(msgspec.Struct, kw_only=True):
    """A category as pages and the API show it."""

    id: int
    slug: str
    name: str
    label_en: str | None = None
    label_fr: str | None = None
    active: bool = True
    position: int = 0

    def label(self, language: str) -> str:
        """The label in ``language`` (``en`` or ``fr``), else the name."""
        chosen = self.label_fr if language == "fr" else self.label_en
        return chosen or self.name


class CategoryInput(msgspec.Struct, kw_only=True):
    """What an admin gives to create or change a category."""

    slug: str
    name: str
    label_en: str | None = None
    label_fr: str | None = None
    active: bool = True
    position: int = 0


def _check(data: CategoryInput) -> CategoryInput:
    slug = data.slug.strip().lower()
    if not _SLUG.match(slug):
        raise ValidationFailed(
            "a slug is 1 to 100 lower-case letters, digits, dashes or underscores",
            field="slug",
        )
    name = data.name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a name has 1 to 200 characters", field="name")
    labels = {}
    for field, value in (("label_en", data.label_en), ("label_fr", data.label_fr)):
        cleaned = (value or "").strip() or None
        if cleaned and len(cleaned) > 200:
            raise ValidationFailed("a label has at most 200 characters", field=field)
        labels[field] = cleaned
    return CategoryInput(slug=slug, name=name, active=data.active, position=data.position, **labels)


def _info(row: dict[str, Any]) -> CategoryInfo:
    return CategoryInfo(
        id=int(row["id"]),
        slug=str(row["slug"]),
        name=str(row["name"]),
        label_en=row["label_en"],
        label_fr=row["label_fr"],
        active=bool(row["active"]),
        position=int(row["position"]),
    )


class CategoryService:
    """Create, change, list categories (admins' pages check the role)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def list(self, active_only: bool = False) -> list[CategoryInfo]:
        """Categories in their order (``position``, then name); only active ones if asked."""
        where = "WHERE active = {} " if active_only else ""
        args = [True] if active_only else []
        rows = await self.db.fetch(
            f"SELECT * FROM category {where}ORDER BY position, name, id", *args
        )
        return [_info(row) for row in rows]

    async def get(self, category_id: int) -> CategoryInfo:
        """One category by id."""
        rows = await self.db.fetch("SELECT * FROM category WHERE id = {}", category_id)
        if not rows:
            raise NotFound(f"category {category_id} not found", field="category_id")
        return _info(rows[0])

    async def create(self, data: CategoryInput) -> CategoryInfo:
        """Add a category; a slug already used is refused."""
        clean = _check(data)
        async with self.db.transaction():
            await self._ensure_free(clean.slug, None)
            rows = await self.db.fetch(
                "INSERT INTO category (slug, name, label_en, label_fr, active, position, "
                "created_at) VALUES ({}, {}, {}, {}, {}, {}, {}) RETURNING id",
                clean.slug,
                clean.name,
                clean.label_en,
                clean.label_fr,
                clean.active,
                clean.position,
                self.app.clock.now(),
            )
        return await self.get(int(rows[0]["id"]))

    async def update(self, category_id: int, data: CategoryInput) -> CategoryInfo:
        """Replace a category's fields (tickets keep the slug they have)."""
        clean = _check(data)
        async with self.db.transaction():
            await self.get(category_id)
            await self._ensure_free(clean.slug, category_id)
            await self.db.fetch(
                "UPDATE category SET slug = {}, name = {}, label_en = {}, label_fr = {}, "
                "active = {}, position = {} WHERE id = {}",
                clean.slug,
                clean.name,
                clean.label_en,
                clean.label_fr,
                clean.active,
                clean.position,
                category_id,
            )
        return await self.get(category_id)

    async def _ensure_free(self, slug: str, category_id: int | None) -> None:
        rows = await self.db.fetch("SELECT id FROM category WHERE slug = {}", slug)
        if rows and int(rows[0]["id"]) != category_id:
            raise ValidationFailed(f"a category with slug {slug!r} exists", field="slug")

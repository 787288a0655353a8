"""Ticket tags: the one normal form every writer stores."""

from __future__ import annotations

from ticketcore.errors import ValidationFailed


def clean_tags(tags: list[str], field: str = "tags") -> list[str]:
    """Tags trimmed, lower-cased and without repeats, in their first order; a tag that is
    empty or longer than 100 characters is refused, named by its place in ``field``."""
    cleaned: list[str] = []
    for i, tag in enumerate(tags):
        value = tag.strip().lower()
        if not value or len(value) > 100:
            raise ValidationFailed("a tag must have 1 to 100 characters", field=f"{field}[{i}]")
        if value not in cleaned:
            cleaned.append(value)
    return cleaned

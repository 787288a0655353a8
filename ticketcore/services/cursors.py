"""Opaque keyset-pagination cursors: ``<kind>:<last id>``, URL-safe base64. The kind keeps a
cursor of one list from being replayed on another."""

from __future__ import annotations

import base64

from ticketcore.errors import ValidationFailed


def encode_cursor(kind: str, last_id: int) -> str:
    """A cursor pointing after row ``last_id`` of a list of ``kind``."""
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The row id a cursor of ``kind`` points after; a clear error for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        if prefix != kind:
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "invalid cursor: pass next_cursor from a previous page", field="cursor"
        ) from exc

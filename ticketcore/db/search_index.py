"""Indexes that make the ticket list's text filter (``q``, a substring of the subject) an index
lookup instead of a scan of every ticket.

SQLite: an FTS5 table with the trigram tokenizer over ``ticket.subject``, kept in step by
triggers; a phrase query on it is a case-insensitive substring match of three characters or
more. PostgreSQL: a GIN trigram index (``pg_trgm``) that ``ILIKE '%...%'`` uses directly; when
the extension cannot be created (no privilege), the filter keeps working as a scan and the
migration says so in the log.
"""

from __future__ import annotations

import logging

from ticketcore.db.database import Database

log = logging.getLogger("ticketcore.db")

#: Shorter needles have no trigram: they are matched by a scan.
MIN_INDEXED_CHARS = 3

_SQLITE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS ticket_subject_fts USING fts5(subject, "
    "content='ticket', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS ticket_subject_ai AFTER INSERT ON ticket BEGIN "
    "INSERT INTO ticket_subject_fts(rowid, subject) VALUES (new.id, new.subject); END",
    "CREATE TRIGGER IF NOT EXISTS ticket_subject_ad AFTER DELETE ON ticket BEGIN "
    "INSERT INTO ticket_subject_fts(ticket_subject_fts, rowid, subject) "
    "VALUES ('delete', old.id, old.subject); END",
    "CREATE TRIGGER IF NOT EXISTS ticket_subject_au AFTER UPDATE OF subject ON ticket BEGIN "
    "INSERT INTO ticket_subject_fts(ticket_subject_fts, rowid, subject) "
    "VALUES ('delete', old.id, old.subject); "
    "INSERT INTO ticket_subject_fts(rowid, subject) VALUES (new.id, new.subject); END",
    "INSERT INTO ticket_subject_fts(ticket_subject_fts) VALUES ('rebuild')",
)


async def create_subject_search_index(db: Database) -> None:
    """Create the subject search index of this engine (inside the migration's transaction)."""
    if db.is_sqlite:
        for ddl in _SQLITE:
            await db.fetch(ddl)
        return
    # In a savepoint: a refused CREATE EXTENSION must not abort the whole migration. The
    # extension goes to ``public`` so that every schema of the database can use it.
    await db.fetch("SAVEPOINT subject_search")
    try:
        await db.fetch("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        await db.fetch(
            "CREATE INDEX IF NOT EXISTS ix_ticket_subject_trgm ON ticket "
            "USING gin (subject public.gin_trgm_ops)"
        )
    except Exception as exc:  # the privilege or the extension is missing
        await db.fetch("ROLLBACK TO SAVEPOINT subject_search")
        log.warning("no trigram index on ticket subjects (%s); text filters will scan", exc)
    await db.fetch("RELEASE SAVEPOINT subject_search")


def fts_phrase(needle: str) -> str:
    """``needle`` as an FTS5 phrase (a substring match with the trigram tokenizer)."""
    return '"' + needle.replace('"', '""') + '"'

"""Knowledge-base articles in the helpdesk's database, with a full-text index per engine.

SQLite: an FTS5 table (``unicode61``, diacritics folded, so "echoue" finds "échoue") kept in
step by triggers, ranked by BM25 with the title weighing four times the body. PostgreSQL: a
generated ``tsvector`` column (title weight A, body weight B, the ``simple`` configuration so
no language's stemming is imposed on another's) with a GIN index, ranked by ``ts_rank_cd``.
Both are created on start-up, idempotently.

Two query modes: ``all`` (every word, as a prefix: what a person types in a search box) and
``any`` (some of the words, best matches first: what a ticket's subject suggests).
"""

from __future__ import annotations

import builtins  # in ArticleStore, `list` names a method
import re
from datetime import datetime
from typing import Any, Literal

import msgspec
from piccolo.columns import BigInt, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ticketcore.db.database import Database
from ticketcore.errors import NotFound

Visibility = Literal["public", "internal"]
ArticleStatus = Literal["draft", "published"]
Mode = Literal["all", "any"]

_WORD = re.compile(r"\w+", re.UNICODE)
#: Words kept from a query: enough for a long subject, bounded for the index's sake.
MAX_WORDS = 12


class KbArticle(Table, tablename="kb_article"):
    """One article: what an agent or a customer reads to solve a problem."""

    title = Varchar(length=300)
    body_text = Text(default="")
    body_html = Text(null=True, default=None)
    visibility = Varchar(length=10, default="public")
    status = Varchar(length=10, default="draft", index=True)
    source_ticket = BigInt(null=True, default=None)
    author_name = Varchar(length=200, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Article(msgspec.Struct, frozen=True, kw_only=True):
    """An article as the API shows it."""

    id: int
    title: str
    body_text: str
    body_html: str | None
    visibility: Visibility
    status: ArticleStatus
    source_ticket: int | None
    author_name: str
    created_at: datetime
    updated_at: datetime


class Found(msgspec.Struct, frozen=True, kw_only=True):
    """A search result: the article's id, title, a snippet and a relevance score."""

    id: int
    title: str
    snippet: str
    score: float


_SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_article_fts USING fts5(title, body_text, "
    "content='kb_article', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS kb_article_ai AFTER INSERT ON kb_article BEGIN "
    "INSERT INTO kb_article_fts(rowid, title, body_text) "
    "VALUES (new.id, new.title, new.body_text); END",
    "CREATE TRIGGER IF NOT EXISTS kb_article_ad AFTER DELETE ON kb_article BEGIN "
    "INSERT INTO kb_article_fts(kb_article_fts, rowid, title, body_text) "
    "VALUES ('delete', old.id, old.title, old.body_text); END",
    "CREATE TRIGGER IF NOT EXISTS kb_article_au AFTER UPDATE ON kb_article BEGIN "
    "INSERT INTO kb_article_fts(kb_article_fts, rowid, title, body_text) "
    "VALUES ('delete', old.id, old.title, old.body_text); "
    "INSERT INTO kb_article_fts(rowid, title, body_text) "
    "VALUES (new.id, new.title, new.body_text); END",
)
_POSTGRES_INDEX = (
    "ALTER TABLE kb_article ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(body_text, '')), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS ix_kb_article_search ON kb_article USING gin (search)",
)
_COLUMNS = (
    "id, title, body_text, body_html, visibility, status, source_ticket, author_name, "
    "created_at, updated_at"
)


def query_words(text: str) -> list[str]:
    """The searchable words of ``text``, lower-cased, longest first when there are many."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text) if len(w) >= 2))
    if len(words) > MAX_WORDS:
        words = sorted(words, key=len, reverse=True)[:MAX_WORDS]
    return words


class ArticleStore:
    """CRUD and search of articles on one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_index(self) -> None:
        """Create the full-text index (and, on SQLite, fill it from existing rows)."""
        if self.db.is_sqlite:
            existed = await self.db.fetch(
                "SELECT name FROM sqlite_master WHERE name = 'kb_article_fts'"
            )
            for ddl in _SQLITE_INDEX:
                await self.db.execute_ddl(ddl)
            if not existed:
                await self.db.execute_ddl(
                    "INSERT INTO kb_article_fts(kb_article_fts) VALUES ('rebuild')"
                )
        else:
            for ddl in _POSTGRES_INDEX:
                await self.db.execute_ddl(ddl)

    async def get(self, article_id: int) -> Article:
        """One article, or NotFound."""
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM kb_article WHERE id = {{}}", article_id)
        if not rows:
            raise NotFound(f"article {article_id} not found", field="article_id")
        return msgspec.convert(rows[0], Article, strict=False)

    async def list(self, *, staff: bool, limit: int = 50) -> list[Article]:
        """Newest first; outside staff only published public articles."""
        where = "" if staff else "WHERE status = 'published' AND visibility = 'public'"
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM kb_article {where} ORDER BY updated_at DESC, id DESC "
            "LIMIT {}",
            limit,
        )
        return [msgspec.convert(r, Article, strict=False) for r in rows]

    async def insert(self, values: dict[str, Any], now: datetime) -> Article:
        """Add an article; returns it."""
        rows = await self.db.fetch(
            "INSERT INTO kb_article (title, body_text, body_html, visibility, status, "
            "source_ticket, author_name, created_at, updated_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING id",
            values["title"],
            values["body_text"],
            values.get("body_html"),
            values["visibility"],
            values["status"],
            values.get("source_ticket"),
            values.get("author_name", ""),
            now,
            now,
        )
        return await self.get(rows[0]["id"])

    async def update(self, article_id: int, values: dict[str, Any], now: datetime) -> Article:
        """Change the given columns; returns the article."""
        await self.get(article_id)
        if values:
            sets = ", ".join(f"{name} = {{}}" for name in values)
            await self.db.fetch(
                f"UPDATE kb_article SET {sets}, updated_at = {{}} WHERE id = {{}}",
                *values.values(),
                now,
                article_id,
            )
        return await self.get(article_id)

    async def delete(self, article_id: int) -> None:
        """Remove an article (NotFound if there is none)."""
        await self.get(article_id)
        await self.db.fetch("DELETE FROM kb_article WHERE id = {}", article_id)

    async def search(
        self, text: str, *, limit: int, mode: Mode = "all", internal: bool = False
    ) -> builtins.list[Found]:
        """Published articles matching ``text``, best first; ``internal`` includes articles
        for staff only."""
        words = query_words(text)
        if not words or limit <= 0:
            return []
        visible = "('public', 'internal')" if internal else "('public')"
        if self.db.is_sqlite:
            joiner = " AND " if mode == "all" else " OR "
            match = joiner.join(f'"{w}"*' if mode == "all" else f'"{w}"' for w in words)
            sql = (
                "SELECT a.id, a.title, snippet(kb_article_fts, 1, '', '', '...', 24) AS snippet, "
                "-bm25(kb_article_fts, 4.0, 1.0) AS score "
                "FROM kb_article_fts JOIN kb_article a ON a.id = kb_article_fts.rowid "
                f"WHERE kb_article_fts MATCH {{}} AND a.status = 'published' "
                f"AND a.visibility IN {visible} ORDER BY score DESC LIMIT {{}}"
            )
        else:
            joiner = " & " if mode == "all" else " | "
            match = joiner.join(f"{w}:*" if mode == "all" else w for w in words)
            sql = (
                "SELECT a.id, a.title, ts_headline('simple', a.body_text, q, "
                '\'MaxWords=24, MinWords=8, StartSel="", StopSel=""\') AS snippet, '
                "ts_rank_cd(a.search, q) AS score "
                "FROM kb_article a, to_tsquery('simple', {}) q "
                f"WHERE a.search @@ q AND a.status = 'published' AND a.visibility IN {visible} "
                "ORDER BY score DESC, a.id DESC LIMIT {}"
            )
        rows = await self.db.fetch(sql, match, limit)
        return [
            Found(id=r["id"], title=r["title"], snippet=r["snippet"], score=float(r["score"]))
            for r in rows
        ]

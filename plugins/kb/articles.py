"""Built-in knowledge base: articles written by agents (often from a solved ticket), searched
by customers in the portal and suggested to agents on a ticket.

    [plugins]
    kb = ["articles"]

    [plugin.kb.articles]
    article_url = "/portal/kb/{id}"     # where a search hit links to

It answers ``kb_search`` (published public articles: safe to show anyone) and ``kb_suggest``
(published articles, internal ones included: for agents), and serves
``/api/v1/kb/articles`` (see ``api.py``). Articles live in this plugin's own table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from piccolo.table import Table

from ticketcore import KbHit, Ticket, hookimpl
from ticketcore.plugins.kb.store import ArticleStore, Found, KbArticle

if TYPE_CHECKING:
    from ticketcore.app import App


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.kb.articles]``."""

    #: Link of a hit; ``{id}`` is the article's id.
    article_url: str = "/kb/{id}"

    def __post_init__(self) -> None:
        if "{id}" not in self.article_url:
            raise ValueError("article_url must contain {id}")


class KnowledgeBase:
    """The plugin object."""

    name = "articles"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: ArticleStore | None = None

    @hookimpl
    def register_tables(self) -> list[type[Table]]:
        """The articles table (its search index is made at start-up)."""
        return [KbArticle]

    @hookimpl
    def register_routes(self) -> list[Any]:
        """``/api/v1/kb/articles``."""
        from ticketcore.plugins.kb.api import ArticleController

        return [ArticleController]

    @hookimpl
    async def startup(self, app: App) -> None:
        """Create the full-text index for this engine."""
        self.store = ArticleStore(app.db)
        await self.store.ensure_index()

    @hookimpl
    async def kb_search(self, query: str, limit: int) -> list[KbHit]:
        """Published public articles with every word of ``query``."""
        return self._hits(await self._store().search(query, limit=limit, mode="all"))

    @hookimpl
    async def kb_suggest(self, ticket: Ticket, limit: int) -> list[KbHit]:
        """Articles that share words with the ticket's subject (internal ones too)."""
        text = f"{ticket.subject} {ticket.category or ''}"
        found = await self._store().search(text, limit=limit, mode="any", internal=True)
        return self._hits(found)

    def _hits(self, found: list[Found]) -> list[KbHit]:
        return [
            KbHit(
                source=self.name,
                title=f.title,
                url=self.config.article_url.format(id=f.id),
                snippet=f.snippet,
                score=f.score,
            )
            for f in found
        ]

    def _store(self) -> ArticleStore:
        if self.store is None:
            raise RuntimeError("the knowledge base has not started")
        return self.store


def create(config: Config) -> KnowledgeBase:
    """Entry point: the built-in knowledge base."""
    return KnowledgeBase(config)

"""The knowledge base in the portal: a search box and public article pages.

Shown only when a knowledge-base plugin is enabled (one implementing ``kb_search``); without
one every page here is a 404 and the portal shows no search box. Search merges every source
(``search_knowledge``: published public articles only). Articles of the built-in
``kb.articles`` plugin are read through its store and shown at ``/portal/kb/{id}`` (and
``/kb/{id}``, the plugin's default link, redirects there); only published public articles
are shown, to anyone, signed in or not.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery
from markupsafe import Markup

from ticketcore.app import App
from ticketcore.domain.models import KbHit
from ticketcore.errors import NotFound
from ticketcore.services.html import sanitize_html
from ticketcore.services.knowledge import search_knowledge
from ticketcore.web.ui.context import ViewerDep

#: The plugin whose articles the portal can show itself.
ARTICLES_PLUGIN = "kb.articles"
MAX_RESULTS = 20


def kb_enabled(helpdesk: App) -> bool:
    """Whether some knowledge-base plugin answers searches."""
    return bool(helpdesk.hooks.implementers("kb_search"))


def _article_store(helpdesk: App) -> Any:
    """The built-in articles' store, or NotFound when that plugin is not running."""
    plugin = helpdesk.pm.get_plugin(ARTICLES_PLUGIN)
    store = getattr(plugin, "store", None)
    if store is None:
        raise NotFound("the knowledge base is not enabled")
    return store


def _safe_hits(hits: list[KbHit]) -> list[KbHit]:
    """Only links to web pages (no ``javascript:`` from a source)."""
    return [h for h in hits if h.url.startswith(("https://", "http://", "/"))]


class KnowledgePages(Controller):
    """``/portal/kb`` (search) and ``/portal/kb/{id}`` (an article)."""

    include_in_schema = False

    @get("/portal/kb")
    async def search(self, viewer: ViewerDep, q: FromQuery[str] = "") -> Response[Any]:
        """The search box and, with ``q``, the hits from every source, best first."""
        helpdesk = viewer.helpdesk
        if not kb_enabled(helpdesk):
            raise NotFound("the knowledge base is not enabled")
        query = q.strip()[:200]
        hits = _safe_hits(await search_knowledge(helpdesk, query, MAX_RESULTS)) if query else []
        return viewer.page("portal/kb_search.html", q=query, hits=hits)

    @get("/portal/kb/{article_id:int}")
    async def article(self, article_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """One published public article (anything else is a 404)."""
        helpdesk = viewer.helpdesk
        if not kb_enabled(helpdesk):
            raise NotFound("the knowledge base is not enabled")
        article = await _article_store(helpdesk).get(article_id)
        if article.status != "published" or article.visibility != "public":
            raise NotFound(f"article {article_id} not found", field="article_id")
        body = Markup(sanitize_html(article.body_html)) if article.body_html else None
        return viewer.page("portal/kb_article.html", article=article, body_html=body)

    @get("/kb/{article_id:int}")
    async def short_link(self, article_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """The articles plugin's default link: the portal's article page."""
        return viewer.redirect(f"/portal/kb/{article_id}")

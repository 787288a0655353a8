"""``/api/v1/kb/articles``: agents write articles (also from a solved ticket); everyone signed
in reads the published public ones."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from ticketcore.domain.enums import EntryKind
from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.plugins.kb.articles import KnowledgeBase
from ticketcore.plugins.kb.store import Article, ArticleStatus, ArticleStore, Found, Visibility
from ticketcore.services import permissions
from ticketcore.services.html import html_to_text, sanitize_html
from ticketcore.web.auth import HelpdeskDep, PrincipalDep

_Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class NewArticle(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An article to add; ``body_html`` is sanitised, ``body`` derived from it when empty."""

    title: _Title
    body: str = ""
    body_html: str | None = None
    visibility: Visibility = "public"
    status: ArticleStatus = "draft"


class ArticlePatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change; absent ones stay."""

    title: _Title | None = None
    body: str | None = None
    body_html: str | None = None
    visibility: Visibility | None = None
    status: ArticleStatus | None = None


def _store(helpdesk: HelpdeskDep) -> ArticleStore:
    plugin = helpdesk.pm.get_plugin("kb.articles")
    if not isinstance(plugin, KnowledgeBase) or plugin.store is None:
        raise NotFound("the knowledge base is not enabled")
    return plugin.store


def _bodies(body: str, body_html: str | None) -> tuple[str, str | None]:
    html = sanitize_html(body_html) if body_html else None
    text = body if body.strip() or not html else html_to_text(html)
    if not text.strip():
        raise ValidationFailed("the article is empty", field="body")
    return text, html


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 100:
        raise ValidationFailed("limit must be between 1 and 100", field="limit")


def _visible(article: Article, viewer: Principal) -> bool:
    return viewer.is_staff or (article.status == "published" and article.visibility == "public")


class ArticleController(Controller):
    """``/api/v1/kb/articles``"""

    path = "/api/v1/kb/articles"
    tags = ["knowledge base"]

    @get("/")
    async def list_articles(
        self, helpdesk: HelpdeskDep, principal: PrincipalDep, limit: FromQuery[int] = 20
    ) -> list[Article]:
        """Newest articles (staff see drafts and internal articles too)."""
        _check_limit(limit)
        return await _store(helpdesk).list(staff=principal.is_staff, limit=limit)

    @get("/search")
    async def search_articles(
        self,
        q: FromQuery[str],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        limit: FromQuery[int] = 10,
    ) -> list[Found]:
        """Published articles with every word of ``q`` (as prefixes), best first; staff also
        find internal ones."""
        _check_limit(limit)
        return await _store(helpdesk).search(q, limit=limit, internal=principal.is_staff)

    @post("/")
    async def create_article(
        self, data: JSONBody[NewArticle], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Article:
        """Write an article (agents and admins)."""
        permissions.ensure_staff(principal, "writing knowledge-base articles")
        text, html = _bodies(data.body, data.body_html)
        values = {
            "title": data.title.strip(),
            "body_text": text,
            "body_html": html,
            "visibility": data.visibility,
            "status": data.status,
            "author_name": principal.name,
        }
        return await _store(helpdesk).insert(values, helpdesk.clock.now())

    @post("/from-ticket/{ticket_id:int}")
    async def article_from_ticket(
        self, ticket_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Article:
        """Draft an article from a solved ticket: its subject, the problem as the customer
        wrote it, and the agents' public answers as the solution."""
        permissions.ensure_staff(principal, "writing knowledge-base articles")
        ticket = await helpdesk.tickets.get(principal, ticket_id)
        entries = await helpdesk.tickets.entries(principal, ticket_id)
        answers = [e.body_text.strip() for e in entries if e.kind is EntryKind.MESSAGE_OUT]
        if not answers:
            raise ValidationFailed(
                "the ticket has no public answer to write the solution from", field="ticket_id"
            )
        body = f"Problem\n\n{ticket.description.strip()}\n\nSolution\n\n" + "\n\n".join(answers)
        values = {
            "title": ticket.subject[:300],
            "body_text": body,
            "visibility": "public",
            "status": "draft",
            "source_ticket": ticket.id,
            "author_name": principal.name,
        }
        return await _store(helpdesk).insert(values, helpdesk.clock.now())

    @get("/{article_id:int}")
    async def get_article(
        self, article_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Article:
        """One article (outside staff: only a published public one)."""
        article = await _store(helpdesk).get(article_id)
        if not _visible(article, principal):
            raise NotFound(f"article {article_id} not found", field="article_id")
        return article

    @patch("/{article_id:int}")
    async def update_article(
        self,
        article_id: FromPath[int],
        data: JSONBody[ArticlePatch],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Article:
        """Edit, publish or unpublish (agents and admins)."""
        permissions.ensure_staff(principal, "editing knowledge-base articles")
        store = _store(helpdesk)
        values: dict[str, object] = {}
        if data.title is not None:
            values["title"] = data.title.strip()
        if data.body is not None or data.body_html is not None:
            current = await store.get(article_id)
            body = current.body_text if data.body is None and not data.body_html else data.body
            text, html = _bodies(body or "", data.body_html)
            values.update(body_text=text, body_html=html)
        if data.visibility is not None:
            values["visibility"] = data.visibility
        if data.status is not None:
            values["status"] = data.status
        return await store.update(article_id, values, helpdesk.clock.now())

    @delete("/{article_id:int}", status_code=204)
    async def delete_article(
        self, article_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Response[None]:
        """Remove an article (agents and admins)."""
        permissions.ensure_staff(principal, "deleting knowledge-base articles")
        await _store(helpdesk).delete(article_id)
        return Response(None, status_code=204)

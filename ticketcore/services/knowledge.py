"""Knowledge search across every enabled knowledge-base source (``kb_search``/``kb_suggest``).

Sources answer independently (a failing one is logged and left out, never failing the
others); the host merges their hits by score, best first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ticketcore.domain.models import KbHit, Ticket

if TYPE_CHECKING:
    from ticketcore.app import App

log = logging.getLogger("ticketcore.knowledge")


async def _merged(app: App, hook: str, limit: int, **kwargs: Any) -> list[KbHit]:
    outcomes = await app.hooks.broadcast(hook, limit=limit, **kwargs)
    hits: list[KbHit] = []
    for outcome in outcomes:
        if outcome.ok:
            hits.extend(outcome.result or [])
        else:
            log.warning("%s: %s failed: %s", outcome.plugin, hook, outcome.error)
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return hits[:limit]


async def search_knowledge(app: App, query: str, limit: int = 10) -> list[KbHit]:
    """Hits for what someone typed, from every source, best first."""
    if not query.strip():
        return []
    return await _merged(app, "kb_search", limit, query=query)


async def suggest_knowledge(app: App, ticket: Ticket, limit: int = 5) -> list[KbHit]:
    """Articles that may answer ``ticket``, from every source, best first (for agents)."""
    return await _merged(app, "kb_suggest", limit, ticket=ticket)

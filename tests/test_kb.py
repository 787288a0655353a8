"""The built-in knowledge base (``kb.articles``) and the host's merged search, through the
API, on both engines: writing, publishing, who sees what, full-text search and ranking,
suggestions for a ticket, an article drafted from a solved ticket, and a second source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest_asyncio

from ticketcore import KbHit, Ticket, hookimpl
from ticketcore.app import App
from ticketcore.testing import Seed, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]


@pytest_asyncio.fixture
async def kb(helpdesk_factory: HelpdeskFactory) -> tuple[App, Seed]:
    app = await helpdesk_factory(plugins={"kb": ["articles"]})
    return app, await seed_helpdesk(app)


@pytest_asyncio.fixture
async def client(kb: tuple[App, Seed]) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(kb[0]) as api:
        yield api


async def write(
    client: httpx.AsyncClient, seed: Seed, title: str, body: str, **more: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/kb/articles/",
        json={"title": title, "body": body, "status": "published", **more},
        headers=seed.headers("agent"),
    )
    assert response.status_code == 201, response.text
    article: dict[str, Any] = response.json()
    return article


async def test_search_finds_words_as_prefixes_and_ranks_titles_first(
    kb: tuple[App, Seed], client: httpx.AsyncClient
) -> None:
    _, seed = kb
    vpn = await write(client, seed, "Reset the VPN client", "Open the settings and reconnect.")
    mention = await write(client, seed, "Printer setup", "If the VPN is down, print locally.")
    card = await write(client, seed, "Carte bancaire refusée", "Votre paiement échoue : vérifiez.")
    found = (
        await client.get(
            "/api/v1/kb/articles/search", params={"q": "vpn"}, headers=seed.headers("customer")
        )
    ).json()
    assert [f["id"] for f in found] == [vpn["id"], mention["id"]]
    prefix = await client.get(
        "/api/v1/kb/articles/search", params={"q": "reconn"}, headers=seed.headers("agent")
    )
    assert [f["id"] for f in prefix.json()] == [vpn["id"]]
    both = await client.get(
        "/api/v1/kb/articles/search",
        params={"q": "vpn printer"},
        headers=seed.headers("agent"),
    )
    assert [f["id"] for f in both.json()] == [mention["id"]]  # every word must be there
    french = await client.get(
        "/api/v1/kb/search", params={"q": "paiement échoue"}, headers=seed.headers("customer")
    )
    [hit] = french.json()
    assert hit["title"] == "Carte bancaire refusée" and hit["source"] == "articles"
    assert hit["url"] == f"/kb/{card['id']}"


async def test_customers_see_only_published_public_articles(
    kb: tuple[App, Seed], client: httpx.AsyncClient
) -> None:
    _, seed = kb
    internal = await write(client, seed, "Escalation contacts", "Call the duty manager.",
                           visibility="internal")  # fmt: skip
    draft = await write(client, seed, "Duty manager rota", "Work in progress.", status="draft")
    public = await write(client, seed, "Duty hours", "We answer from 8 to 18.")
    as_customer = seed.headers("customer")
    listed = (await client.get("/api/v1/kb/articles/", headers=as_customer)).json()
    assert [a["id"] for a in listed] == [public["id"]]
    for hidden in (internal, draft):
        response = await client.get(f"/api/v1/kb/articles/{hidden['id']}", headers=as_customer)
        assert response.status_code == 404
    searched = await client.get(
        "/api/v1/kb/articles/search", params={"q": "duty"}, headers=as_customer
    )
    assert [f["id"] for f in searched.json()] == [public["id"]]
    staff = await client.get(
        "/api/v1/kb/articles/search", params={"q": "duty"}, headers=seed.headers("agent")
    )
    assert {f["id"] for f in staff.json()} == {public["id"], internal["id"]}  # drafts: no
    denied = await client.post(
        "/api/v1/kb/articles/", json={"title": "x", "body": "y"}, headers=as_customer
    )
    assert denied.status_code == 403


async def test_edit_unpublish_delete_and_bad_input(
    kb: tuple[App, Seed], client: httpx.AsyncClient
) -> None:
    _, seed = kb
    article = await write(client, seed, "Password reset", "Use the link on the sign-in page.")
    as_agent = seed.headers("agent")
    changed = await client.patch(
        f"/api/v1/kb/articles/{article['id']}",
        json={"body_html": "<p>Use the <b>Forgot password</b> link.<script>x()</script></p>"},
        headers=as_agent,
    )
    assert changed.status_code == 200
    assert "script" not in changed.json()["body_html"]
    assert "Forgot password" in changed.json()["body_text"]
    search = {"q": "forgot"}
    found = await client.get("/api/v1/kb/articles/search", params=search, headers=as_agent)
    assert [f["id"] for f in found.json()] == [article["id"]]  # the index follows edits
    await client.patch(
        f"/api/v1/kb/articles/{article['id']}", json={"status": "draft"}, headers=as_agent
    )
    found = await client.get("/api/v1/kb/articles/search", params=search, headers=as_agent)
    assert found.json() == []
    gone = await client.delete(f"/api/v1/kb/articles/{article['id']}", headers=as_agent)
    assert gone.status_code == 204
    missing = await client.get(f"/api/v1/kb/articles/{article['id']}", headers=as_agent)
    assert missing.status_code == 404 and missing.json()["field"] == "article_id"
    empty = await client.post(
        "/api/v1/kb/articles/", json={"title": "Empty", "body": " "}, headers=as_agent
    )
    assert empty.status_code == 422 and empty.json()["field"] == "body"
    unknown = await client.post(
        "/api/v1/kb/articles/",
        json={"title": "x", "body": "y", "visibility": "secret"},
        headers=as_agent,
    )
    assert unknown.status_code in (400, 422) and "visibility" in unknown.text


async def test_suggestions_for_a_ticket_and_an_article_from_its_solution(
    kb: tuple[App, Seed], client: httpx.AsyncClient
) -> None:
    _, seed = kb
    printer = await write(client, seed, "Printer jams on tray 2", "Remove the tray, then...")
    await write(client, seed, "VPN drops", "Reconnect.")
    created = await client.post(
        "/api/v1/tickets",
        json={"subject": "The printer jams again", "body": "Tray 2 is stuck."},
        headers=seed.headers("customer"),
    )
    ticket_id = created.json()["id"]
    suggested = await client.get(
        f"/api/v1/tickets/{ticket_id}/kb-suggestions", headers=seed.headers("agent")
    )
    assert [s["title"] for s in suggested.json()][:1] == [printer["title"]]
    forbidden = await client.get(
        f"/api/v1/tickets/{ticket_id}/kb-suggestions", headers=seed.headers("customer")
    )
    assert forbidden.status_code == 403

    no_answer = await client.post(
        f"/api/v1/kb/articles/from-ticket/{ticket_id}", headers=seed.headers("agent")
    )
    assert no_answer.status_code == 422
    await client.post(
        f"/api/v1/tickets/{ticket_id}/notes",
        json={"body": "internal: customer is difficult"},
        headers=seed.headers("agent"),
    )
    await client.post(
        f"/api/v1/tickets/{ticket_id}/messages",
        json={"body": "Open tray 2 and pull the green lever."},
        headers=seed.headers("agent"),
    )
    drafted = await client.post(
        f"/api/v1/kb/articles/from-ticket/{ticket_id}", headers=seed.headers("agent")
    )
    assert drafted.status_code == 201
    article = drafted.json()
    assert article["status"] == "draft" and article["source_ticket"] == ticket_id
    assert "Tray 2 is stuck." in article["body_text"]
    assert "green lever" in article["body_text"]
    assert "difficult" not in article["body_text"]  # internal notes never become articles


class OtherSource:
    """A second knowledge source (e.g. an external wiki), with higher scores."""

    @hookimpl
    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        return [KbHit(source="wiki", title=f"Wiki: {query}", url="https://wiki/1", score=99.0)]

    @hookimpl
    def kb_suggest(self, ticket: Ticket, limit: int) -> list[KbHit]:
        raise RuntimeError("the wiki is down")


async def test_the_host_merges_sources_and_survives_a_failing_one(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(
        plugins={"kb": ["articles"]}, extra_plugins=[("wiki", OtherSource())]
    )
    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        await write(client, seed, "VPN drops", "Reconnect.")
        merged = await client.get(
            "/api/v1/kb/search", params={"q": "vpn"}, headers=seed.headers("customer")
        )
        assert [h["source"] for h in merged.json()] == ["wiki", "articles"]
        created = await client.post(
            "/api/v1/tickets",
            json={"subject": "vpn drops", "body": "help"},
            headers=seed.headers("customer"),
        )
        suggested = await client.get(
            f"/api/v1/tickets/{created.json()['id']}/kb-suggestions",
            headers=seed.headers("agent"),
        )
        assert suggested.status_code == 200
        assert [h["source"] for h in suggested.json()] == ["articles"]


async def test_without_the_plugin_search_is_empty_and_articles_are_absent(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory()
    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        response = await client.get(
            "/api/v1/kb/search", params={"q": "vpn"}, headers=seed.headers("customer")
        )
        assert response.status_code == 200 and response.json() == []
        absent = await client.get("/api/v1/kb/articles/", headers=seed.headers("agent"))
        assert absent.status_code == 404

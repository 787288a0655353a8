"""The knowledge base in the portal: search box, hits and public article pages when a kb
plugin is enabled; nothing of it without one (both engines)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from web_ui_helpers import Site, make_people, site_fixture  # noqa: F401

from ticketcore.app import App

pytestmark = pytest.mark.db


@pytest_asyncio.fixture
async def kb_site(helpdesk_factory: Callable[..., Awaitable[App]]) -> AsyncIterator[Site]:
    """A site with the built-in ``articles`` knowledge base enabled."""
    from ticketcore.web import create_app

    app = await helpdesk_factory(web={"secure_cookies": False}, plugins={"kb": ["articles"]})
    made = Site(
        app=app,
        people=await make_people(app),
        web=create_app(app, run_worker=False),
        clients=[],
    )
    yield made
    for client in made.clients:
        await client.aclose()


async def _article(app: App, title: str, **values: Any) -> int:
    store = app.pm.get_plugin("kb.articles").store
    row = {"title": title, "body_text": "", "visibility": "public", "status": "published"}
    article = await store.insert({**row, **values}, app.clock.now())
    return int(article.id)


async def test_search_and_article_pages(kb_site: Site) -> None:
    app, p = kb_site.app, kb_site.people
    public = await _article(
        app,
        "Reset your password",
        body_text="Go to Settings, then Password.",
        body_html='<p>Go to <b>Settings</b>, then Password.</p><script>alert("x")</script>'
        '<a href="javascript:alert(1)">x</a>',
    )
    plain = await _article(app, "Password rules", body_text="At least 12 characters.")
    internal = await _article(app, "Password vault for staff", visibility="internal")
    draft = await _article(app, "Password draft", status="draft")

    customer, _ = await kb_site.signed_in(p.customer.email)
    home = await customer.get("/portal")
    assert 'id="kb-q"' in home.text and 'action="/portal/kb"' in home.text

    found = await customer.get("/portal/kb", params={"q": "password"})
    assert found.status_code == 200
    assert "Reset your password" in found.text and "Password rules" in found.text
    assert "vault" not in found.text and "draft" not in found.text
    assert 'value="password"' in found.text  # the query stays in the box
    nothing = await customer.get("/portal/kb", params={"q": "zeppelin"})
    assert "No article matches" in nothing.text

    # The plugin's default link leads to the portal's article page.
    short = await customer.get(f"/kb/{public}")
    assert short.status_code == 303 and short.headers["location"] == f"/portal/kb/{public}"
    page = await customer.get(f"/portal/kb/{public}")
    assert page.status_code == 200
    assert "<b>Settings</b>" in page.text
    assert "<script>alert" not in page.text and "javascript:" not in page.text
    text_only = await customer.get(f"/portal/kb/{plain}")
    assert "At least 12 characters." in text_only.text

    for hidden in (internal, draft, 99_999):
        assert (await customer.get(f"/portal/kb/{hidden}")).status_code == 404

    # Public articles are public: no sign-in needed.
    anonymous = kb_site.client()
    assert (await anonymous.get(f"/portal/kb/{public}")).status_code == 200
    assert "Reset your password" in (await anonymous.get("/portal/kb?q=reset")).text


async def test_hidden_without_a_kb_plugin(site: Site) -> None:
    customer, _ = await site.signed_in(site.people.customer.email)
    home = await customer.get("/portal")
    assert home.status_code == 200 and 'id="kb-q"' not in home.text
    assert (await customer.get("/portal/kb", params={"q": "x"})).status_code == 404
    assert (await customer.get("/portal/kb/1")).status_code == 404

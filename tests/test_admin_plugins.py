"""The admin's plugins page: enable, disable and configure plugins of the running helpdesk
(both engines, in-process HTTP; the browser walk is in ``test_web_browser_admin``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from web_ui_helpers import Site, csrf_of, make_people

from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal

SECRET = "hook-secret-value-123"


@pytest_asyncio.fixture(name="kb_site")
async def kb_site_fixture(
    helpdesk_factory: Callable[..., Awaitable[App]], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Site]:
    """A helpdesk with the knowledge base and the webhook notifier (its secret read from
    the environment) enabled in the settings file, served in-process."""
    from ticketcore.web import create_app

    monkeypatch.setenv("TC_HOOK_SECRET", SECRET)
    app = await helpdesk_factory(
        web={"secure_cookies": False},
        plugins={"kb": ["articles"], "notifiers": ["webhook"]},
        plugin={
            "kb": {"articles": {"article_url": "/kb/{id}"}},
            "notifiers": {
                "webhook": {"urls": ["http://127.0.0.1:9/"], "secret": {"env": "TC_HOOK_SECRET"}}
            },
        },
        env={"TC_HOOK_SECRET": SECRET},
    )
    made = Site(
        app=app, people=await make_people(app), web=create_app(app, run_worker=False), clients=[]
    )
    yield made
    for client in made.clients:
        await client.aclose()


def _row(html: str, plugin: str) -> str:
    found = re.search(rf'<tr data-plugin="{re.escape(plugin)}">(.*?)</tr>', html, re.S)
    assert found, html
    return found.group(1)


async def _ticket_with_article(site: Site) -> int:
    app = site.app
    store = app.pm.get_plugin("kb.articles").store
    await store.insert(
        {
            "title": "Printer jams: what to do",
            "body_text": "Open the tray",
            "visibility": "public",
            "status": "published",
            "author_name": "Ada",
        },
        app.clock.now(),
    )
    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="printer jams again", requester=RequesterInput(email="c@x.example")),
    )
    return ticket.id


async def test_disabling_a_plugin_removes_its_feature_and_routes(kb_site: Site) -> None:
    site, app = kb_site, kb_site.app
    ticket_id = await _ticket_with_article(site)
    token = await app.auth.create_token(site.people.agent.id, "api")
    api = site.client(Authorization=f"Bearer {token}")
    agent, _ = await site.signed_in(site.people.agent.email)
    admin, csrf = await site.signed_in(site.people.admin.email)

    assert "Printer jams" in (await agent.get(f"/agent/tickets/{ticket_id}")).text
    assert (await api.get("/api/v1/kb/articles/")).status_code == 200

    done = await admin.post(
        "/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "0"}
    )
    assert done.status_code == 303 and "done=plugin_disabled" in done.headers["location"]
    page = await admin.get("/admin/plugins")
    assert 'data-enabled="no"' in _row(page.text, "kb.articles")
    ticket_page = (await agent.get(f"/agent/tickets/{ticket_id}")).text
    assert "Printer jams" not in ticket_page and 'id="kb-title"' not in ticket_page
    gone = await api.get("/api/v1/kb/articles/")
    # the guard (not the plugin's own check) answers: the route itself is switched off
    assert gone.status_code == 404 and "kb.articles is not enabled" in gone.text

    csrf = csrf_of(page.text)
    await admin.post("/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "1"})
    assert "Printer jams" in (await agent.get(f"/agent/tickets/{ticket_id}")).text
    assert (await api.get("/api/v1/kb/articles/")).status_code == 200


async def test_invalid_settings_show_errors_in_place_and_save_nothing(kb_site: Site) -> None:
    site, app = kb_site, kb_site.app
    admin, csrf = await site.signed_in(site.people.admin.email)
    form = await admin.get("/admin/plugins/kb/articles")
    assert form.status_code == 200 and 'name="setting.article_url"' in form.text

    bad = await admin.post(
        "/admin/plugins/kb/articles", data={"_csrf": csrf, "setting.article_url": "/no-id-here"}
    )
    assert bad.status_code == 422
    field = re.search(r'data-setting="article_url">(.*?)</div>', bad.text, re.S)
    assert field and "article_url must contain {id}" in field.group(1), bad.text
    assert 'value="/no-id-here"' in field.group(1), "the submitted value was not kept"
    assert app.pm.get_plugin("kb.articles").config.article_url == "/kb/{id}"
    assert await app.db.fetchval("SELECT COUNT(*) FROM plugin_override") == 0

    webhook = await admin.post(
        "/admin/plugins/notifiers/webhook",
        data={
            "_csrf": csrf,
            "setting.urls": "[not json",
            "setting.secret": "********",
            "setting.timeout_seconds": "soon",
        },
    )
    assert webhook.status_code == 422
    urls = re.search(r'data-setting="urls">(.*?)</div>', webhook.text, re.S)
    timeout = re.search(r'data-setting="timeout_seconds">(.*?)</div>', webhook.text, re.S)
    assert urls and "not valid JSON" in urls.group(1)
    assert timeout and "must be a number" in timeout.group(1)

    good = await admin.post(
        "/admin/plugins/kb/articles", data={"_csrf": csrf, "setting.article_url": "/help/{id}"}
    )
    assert good.status_code == 303
    assert app.pm.get_plugin("kb.articles").config.article_url == "/help/{id}"


async def test_secrets_are_masked_and_kept(kb_site: Site) -> None:
    site, app = kb_site, kb_site.app
    admin, csrf = await site.signed_in(site.people.admin.email)
    for url in ("/admin/plugins", "/admin/plugins/notifiers/webhook"):
        page = await admin.get(url)
        assert SECRET not in page.text and "********" in page.text

    saved = await admin.post(
        "/admin/plugins/notifiers/webhook",
        data={
            "_csrf": csrf,
            "setting.urls": '["http://127.0.0.1:9/hook"]',
            "setting.secret": "********",
            "setting.timeout_seconds": "2.5",
        },
    )
    assert saved.status_code == 303, saved.text
    plugin = app.pm.get_plugin("notifiers.webhook")
    assert plugin.config.secret == SECRET and plugin.config.timeout_seconds == 2.5
    stored = await app.db.fetchval("SELECT settings FROM plugin_override")
    assert SECRET not in stored and "secret" not in stored, "the file's env secret was copied"

    # an env reference typed in stays a reference; the mask keeps it on the next save
    await admin.post(
        "/admin/plugins/notifiers/webhook",
        data={
            "_csrf": csrf,
            "setting.urls": '["http://127.0.0.1:9/"]',
            "setting.secret": "{env=TC_HOOK_SECRET}",
        },
    )
    await admin.post(
        "/admin/plugins/notifiers/webhook",
        data={
            "_csrf": csrf,
            "setting.urls": '["http://127.0.0.1:9/"]',
            "setting.secret": "********",
        },
    )
    stored = await app.db.fetchval("SELECT settings FROM plugin_override")
    assert '"secret": {"env": "TC_HOOK_SECRET"}' in stored and SECRET not in stored
    assert app.pm.get_plugin("notifiers.webhook").config.secret == SECRET
    page = await admin.get("/admin/plugins/notifiers/webhook")
    assert SECRET not in page.text and "TC_HOOK_SECRET" not in page.text


async def test_only_admins_with_a_csrf_token(kb_site: Site) -> None:
    site, app = kb_site, kb_site.app
    agent, csrf = await site.signed_in(site.people.agent.email)
    for url in ("/admin/plugins", "/admin/plugins/kb/articles"):
        assert (await agent.get(url)).status_code == 403
    refused = await agent.post(
        "/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "0"}
    )
    assert refused.status_code == 403
    admin, _ = await site.signed_in(site.people.admin.email)
    forged = await admin.post(
        "/admin/plugins/kb/articles/enabled", data={"_csrf": "forged", "enabled": "0"}
    )
    assert forged.status_code == 403
    assert app.pm.get_plugin("kb.articles") is not None


async def test_reset_gives_the_file_back_its_say(kb_site: Site) -> None:
    site, app = kb_site, kb_site.app
    admin, csrf = await site.signed_in(site.people.admin.email)
    await admin.post("/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "0"})
    page = await admin.get("/admin/plugins")
    assert "Back to the file" in _row(page.text, "kb.articles")
    await admin.post("/admin/plugins/kb/articles/reset", data={"_csrf": csrf})
    assert app.pm.get_plugin("kb.articles") is not None
    assert (await admin.get("/admin/plugins/no/such")).status_code == 404


async def test_another_web_server_follows_on_its_next_request(
    kb_site: Site, helpdesk_factory: Callable[..., Awaitable[App]]
) -> None:
    """A second helpdesk on the same database, serving its own web app: the admin's change
    made on the first reaches its pages and routes with the next request after its cache."""
    from ticketcore.web import create_app

    site = kb_site
    ticket_id = await _ticket_with_article(site)
    other_app = await helpdesk_factory(
        web={"secure_cookies": False},
        plugins={"kb": ["articles"]},
        plugin={"kb": {"articles": {"article_url": "/kb/{id}"}}},
    )
    other_app.plugin_runtime.max_age = 0
    other = Site(
        app=other_app, people=site.people, web=create_app(other_app, run_worker=False), clients=[]
    )
    try:
        token = await other_app.auth.create_token(site.people.agent.id, "api")
        api = other.client(Authorization=f"Bearer {token}")
        agent, _ = await other.signed_in(site.people.agent.email)
        assert "Printer jams" in (await agent.get(f"/agent/tickets/{ticket_id}")).text
        admin, csrf = await site.signed_in(site.people.admin.email)
        await admin.post("/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "0"})
        # pages follow (``before_request``)...
        assert "Printer jams" not in (await agent.get(f"/agent/tickets/{ticket_id}")).text
        assert (await api.get("/api/v1/kb/articles/")).status_code == 404
        await admin.post("/admin/plugins/kb/articles/enabled", data={"_csrf": csrf, "enabled": "1"})
        # ...and so do the guarded plugin routes (guards run before ``before_request``)
        assert (await api.get("/api/v1/kb/articles/")).status_code == 200
        assert "Printer jams" in (await agent.get(f"/agent/tickets/{ticket_id}")).text
    finally:
        for client in other.clients:
            await client.aclose()

"""Safety of the pages: sessions and their cookie, CSRF on every form, role checks on every
page, escaping of everything user-written, security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from web_ui_helpers import PASSWORD, Site, csrf_of, site_fixture  # noqa: F401

from ticketcore.app import App
from ticketcore.domain.commands import NewEntry, NewTicket
from ticketcore.web import create_app
from ticketcore.web.ui.session import COOKIE_NAME, Session, SessionCodec

HelpdeskFactory = Callable[..., Awaitable[App]]

pytestmark = pytest.mark.db


async def test_sign_in_sets_a_hardened_session_cookie(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    from ticketcore.testing import seed_helpdesk  # noqa: F401  (fixtures only)

    app = await helpdesk_factory()
    from web_ui_helpers import make_people

    people = await make_people(app)
    import httpx

    web = create_app(app, run_worker=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="https://ticketcore.test"
    ) as client:
        page = await client.get("/login")
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
            assert flag.lower() in cookie.lower(), cookie
        before = client.cookies[COOKIE_NAME]
        done = await client.post(
            "/login",
            data={"_csrf": csrf_of(page.text), "email": people.agent.email, "password": PASSWORD},
        )
        assert done.status_code == 303 and done.headers["location"] == "/agent"
        # A new session on sign-in (no fixation): new value, new CSRF token.
        assert client.cookies[COOKIE_NAME] != before
        queue = await client.get("/agent/queue/mine")
        assert queue.status_code == 200
        assert csrf_of(queue.text) != csrf_of(page.text)


async def test_wrong_password_and_unknown_user(site: Site) -> None:
    client = site.client()
    page = await client.get("/login")
    for email, password in ((site.people.agent.email, "nope nope"), ("x@y.test", PASSWORD)):
        failed = await client.post(
            "/login", data={"_csrf": csrf_of(page.text), "email": email, "password": password}
        )
        assert failed.status_code == 401
        assert "Wrong e-mail or password" in failed.text
    assert (await client.get("/agent/queue/mine")).status_code == 303


async def test_forged_expired_and_tampered_sessions_are_signed_out(site: Site) -> None:
    codec: SessionCodec = site.web.state.ui.codec
    agent = site.people.agent
    forged = SessionCodec(b"not the key", 3600).encode(Session().signed_in(agent.id, 3600))
    expired = codec.encode(Session().signed_in(agent.id, -10))
    good = codec.encode(Session().signed_in(agent.id, 3600))
    payload, mac = good.rsplit(".", 1)
    tampered = codec.encode(Session().signed_in(site.people.admin.id, 3600)).rsplit(".")[0]
    for value in (forged, expired, f"{tampered}.{mac}", "garbage", f"{payload}."):
        client = site.client()
        client.cookies.set(COOKIE_NAME, value)
        response = await client.get("/agent/queue/mine")
        assert response.status_code == 303, value
        assert response.headers["location"] == "/login?next=/agent/queue/mine"
    client = site.client()
    client.cookies.set(COOKIE_NAME, good)
    assert (await client.get("/agent/queue/mine")).status_code == 200


async def test_every_form_needs_the_csrf_token(site: Site) -> None:
    app, people = site.app, site.people
    ticket = await app.tickets.create(people.customer, NewTicket(subject="Help", body="x"))
    agent, token = await site.signed_in(people.agent.email)
    admin, admin_token = await site.signed_in(people.admin.email)
    customer, customer_token = await site.signed_in(people.customer.email)
    posts = [
        (agent, f"/agent/tickets/{ticket.id}/entries", {"kind": "reply", "body": "hi"}),
        (agent, f"/agent/tickets/{ticket.id}/fields", {"priority": "high", "version": "1"}),
        (agent, f"/agent/tickets/{ticket.id}/transition", {"transition": "resolve"}),
        (agent, f"/agent/tickets/{ticket.id}/macro", {"macro_id": "1"}),
        (customer, f"/portal/tickets/{ticket.id}/reply", {"body": "hi"}),
        (customer, f"/portal/tickets/{ticket.id}/status", {"action": "confirm"}),
        (customer, "/portal/new", {"subject": "s", "body": "b"}),
        (admin, "/admin/tokens", {"user_id": str(people.admin.id), "name": "x"}),
        (admin, "/admin/tokens/1/revoke", {}),
        (agent, "/logout", {}),
        (agent, "/language", {"language": "fr"}),
    ]
    for client, url, data in posts:
        for csrf in (None, "wrong-token"):
            form = dict(data) if csrf is None else {**data, "_csrf": csrf}
            response = await client.post(url, data=form)
            assert response.status_code == 403, url
            assert "form has expired" in response.text
    # Nothing happened: no entry, no change, no token, still signed in.
    assert [e.kind.value for e in await app.tickets.entries(people.agent, ticket.id)] == [
        "message_in"
    ]
    assert (await app.tickets.snapshot(ticket.id)).version == 1
    assert (await agent.get("/agent/queue/mine")).status_code == 200
    # And the same post with the token works.
    ok = await agent.post(
        f"/agent/tickets/{ticket.id}/entries",
        data={"kind": "reply", "body": "hi", "_csrf": token},
    )
    assert ok.status_code == 303 and "done=reply_sent" in ok.headers["location"]
    assert admin_token and customer_token


async def test_roles_on_every_page(site: Site) -> None:
    app, people = site.app, site.people
    mine = await app.tickets.create(people.customer, NewTicket(subject="Mine", body="x"))
    theirs = await app.tickets.create(people.other, NewTicket(subject="Theirs", body="y"))
    anonymous = site.client()
    customer, _ = await site.signed_in(people.customer.email)
    agent, _ = await site.signed_in(people.agent.email)
    admin, _ = await site.signed_in(people.admin.email)
    staff_pages = [
        "/agent/queue/mine",
        "/agent/queue/unassigned?fragment=1",
        "/agent/search?q=x",
        f"/agent/tickets/{mine.id}",
        f"/agent/tickets/{mine.id}?fragment=1",
    ]
    admin_pages = ["/admin/plugins", "/admin/teams", "/admin/agents", "/admin/tokens"]
    portal_pages = ["/portal", "/portal/new", f"/portal/tickets/{mine.id}"]
    for url in staff_pages + admin_pages + portal_pages + ["/live"]:
        response = await anonymous.get(url)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/login"), url
    for url in staff_pages + admin_pages:
        assert (await customer.get(url)).status_code == 403, url
    for url in admin_pages + portal_pages:
        assert (await agent.get(url)).status_code == 403, url
    for url in staff_pages + admin_pages:
        assert (await admin.get(url)).status_code == 200, url
    for url in portal_pages:
        assert (await customer.get(url)).status_code == 200, url
    # Another customer's ticket does not exist for this customer, nor do its files.
    other_page = await customer.get(f"/portal/tickets/{theirs.id}")
    assert other_page.status_code == 404 and "Theirs" not in other_page.text


async def test_customers_never_get_internal_notes_or_their_files(site: Site) -> None:
    app, people = site.app, site.people
    ticket = await app.tickets.create(people.customer, NewTicket(subject="Q", body="question"))
    agent, token = await site.signed_in(people.agent.email)
    await agent.post(
        f"/agent/tickets/{ticket.id}/entries",
        data={"kind": "note", "body": "internal: customer is on the old plan", "_csrf": token},
        files={"files": ("plan.txt", b"old plan", "text/plain")},
    )
    await app.tickets.add_entry(
        people.agent, ticket.id, NewEntry(body="public answer"), internal=False
    )
    entries = await app.tickets.entries(people.agent, ticket.id)
    note_file = entries[1].attachments[0].id
    customer, _ = await site.signed_in(people.customer.email)
    page = await customer.get(f"/portal/tickets/{ticket.id}")
    assert "public answer" in page.text
    assert "old plan" not in page.text and "plan.txt" not in page.text
    assert (await customer.get(f"/files/{note_file}")).status_code == 404
    staff_view = await agent.get(f"/agent/tickets/{ticket.id}")
    assert 'class="entry entry-note"' in staff_view.text and "plan.txt" in staff_view.text
    download = await agent.get(f"/files/{note_file}")
    assert download.status_code == 200 and download.content == b"old plan"
    assert download.headers["content-disposition"].startswith("attachment;")


async def test_user_written_text_is_escaped(site: Site) -> None:
    app, people = site.app, site.people
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ticket = await app.tickets.create(
        people.customer, NewTicket(subject=f"Subject {evil}", body=f"Body {evil}")
    )
    await app.tickets.add_entry(
        people.agent, ticket.id, NewEntry(body=f"@sam {evil}"), internal=True
    )
    await app.tickets.add_entry(
        people.customer,
        ticket.id,
        NewEntry(body="", body_html=f"<p>html <b>bold</b></p>{evil}"),
        internal=False,
    )
    agent, _ = await site.signed_in(people.agent.email)
    customer, _ = await site.signed_in(people.customer.email)
    pages = [
        await agent.get("/agent/queue/unassigned"),
        await agent.get(f"/agent/tickets/{ticket.id}"),
        await agent.get(f"/agent/search?q={ticket.subject[:7]}"),
        await customer.get("/portal"),
        await customer.get(f"/portal/tickets/{ticket.id}"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text
    # Sanitised stored HTML keeps its harmless markup.
    assert "<b>bold</b>" in pages[1].text


async def test_security_headers_and_no_inline_script(site: Site) -> None:
    agent, _ = await site.signed_in(site.people.agent.email)
    page = await agent.get("/agent/queue/mine")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    assert '<script src="/static/ticketcore.js" defer></script>' in page.text


async def test_sign_in_returns_only_to_local_pages(site: Site) -> None:
    client = site.client()
    for target, expected in (
        ("/agent/queue/team", "/agent/queue/team"),
        ("https://evil.test/x", "/agent"),
        ("//evil.test/x", "/agent"),
    ):
        client.cookies.clear()
        page = await client.get(f"/login?next={target}")
        done = await client.post(
            "/login",
            data={
                "_csrf": csrf_of(page.text),
                "email": site.people.agent.email,
                "password": PASSWORD,
                "next": target,
            },
        )
        assert done.headers["location"] == expected

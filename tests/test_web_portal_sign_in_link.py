"""Sign-in by e-mail link: the request page answers the same for every address, the link
goes out through the ``notify`` outbox (rendered by the e-mail notifier's EN/FR templates),
works once, expires, is rate-limited per address, and starts a fresh session (both
engines)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import msgspec
import pytest
import pytest_asyncio
from web_ui_helpers import Site, csrf_of, make_people, site_fixture  # noqa: F401

from ticketcore import hookimpl
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.models import Notification
from ticketcore.errors import NotAuthenticated
from ticketcore.plugins.notifiers import email as email_notifier
from ticketcore.services.auth import token_hash
from ticketcore.services.sign_in_links import LIFETIME, MAX_PER_WINDOW, RATE_WINDOW
from ticketcore.web.ui.session import COOKIE_NAME

pytestmark = pytest.mark.db
PUBLIC = "https://help.example.org"
LINK = re.compile(re.escape(PUBLIC) + r"/login/link/([A-Za-z0-9_-]+)")


class Outbox:
    """A notifier that keeps what it is asked to deliver."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.sent.append(notification)


@pytest_asyncio.fixture
async def link_site(
    helpdesk_factory: Callable[..., Awaitable[App]],
) -> AsyncIterator[tuple[Site, Outbox]]:
    """A site with a public URL and a notifier."""
    from ticketcore.web import create_app

    outbox = Outbox()
    app = await helpdesk_factory(
        web={"secure_cookies": False, "public_url": PUBLIC + "/"},
        extra_plugins=[("outbox", outbox)],
    )
    made = Site(
        app=app, people=await make_people(app), web=create_app(app, run_worker=False), clients=[]
    )
    yield made, outbox
    for client in made.clients:
        await client.aclose()


async def _ask(site: Site, email: str) -> str:
    """Ask for a link through the form; return the page's text (after the outbox ran)."""
    client = site.client()
    form = await client.get("/login/link")
    assert form.status_code == 200
    answer = await client.post("/login/link", data={"_csrf": csrf_of(form.text), "email": email})
    assert answer.status_code == 200
    await site.app.jobs.run_due()
    return answer.text


async def test_link_signs_in_once(link_site: tuple[Site, Outbox], clock: FrozenClock) -> None:
    site, outbox = link_site
    login = await site.client().get("/login")
    assert 'href="/login/link"' in login.text

    # Known customer, unknown address, an agent's address: the same answer (but for the
    # address itself and the page's CSRF token).
    addresses = ["Carol@Customer.test", "nobody@customer.test", site.people.agent.email]
    pages = []
    for address in addresses:
        answer = await _ask(site, address)
        pages.append(answer.replace(address, "ADDRESS").replace(csrf_of(answer), "CSRF"))
    assert "ADDRESS" in pages[0] and pages[1:] == [pages[0], pages[0]]
    assert len(outbox.sent) == 1
    note = outbox.sent[0]
    assert (note.kind, note.recipients) == ("sign_in_link", ["carol@customer.test"])
    found = LINK.search(note.data["sign_in_url"])
    assert found
    token = found.group(1)
    # Only the hash is stored.
    rows = await site.app.db.fetch("SELECT token_hash FROM sign_in_link")
    assert [r["token_hash"] for r in rows] == [token_hash(token)]

    # The e-mail notifier renders it in the language of the page it was asked from.
    assert note.data["language"] == "en"
    mailer = email_notifier.create(email_notifier.Config(from_address="support@help.example"))
    for language, words in (("en", "sign-in link"), ("fr", "lien de connexion")):
        localised = msgspec.structs.replace(note, data={**note.data, "language": language})
        mail = mailer.render(localised, "carol@customer.test")
        assert mail.template == f"{language}/sign_in_link.txt"
        assert words in mail.subject.lower() and note.data["sign_in_url"] in mail.body

    # Opening the link signs nobody in (mail scanners fetch links); the button does.
    browser = site.client()
    opened = await browser.get(f"/login/link/{token}")
    assert opened.status_code == 200 and 'id="link-continue"' in opened.text
    before = browser.cookies.get(COOKIE_NAME)
    assert (await browser.get("/portal")).status_code == 303  # not signed in yet
    signed = await browser.post(f"/login/link/{token}", data={"_csrf": csrf_of(opened.text)})
    assert signed.status_code == 303 and signed.headers["location"] == "/portal"
    assert browser.cookies.get(COOKIE_NAME) != before
    portal = await browser.get("/portal")
    assert portal.status_code == 200 and "Carol Customer" in portal.text
    assert csrf_of(portal.text) != csrf_of(opened.text)  # a fresh CSRF token

    # Used up: a second use fails, in another browser too.
    again = site.client()
    page = await again.get(f"/login/link/{token}")
    refused = await again.post(f"/login/link/{token}", data={"_csrf": csrf_of(page.text)})
    assert refused.status_code == 400 and "invalid, already used or expired" in refused.text
    assert (await again.get("/portal")).status_code == 303

    # Without the CSRF token the button does nothing.
    await _ask(site, "carol@customer.test")
    fresh = LINK.search(outbox.sent[-1].data["sign_in_url"])
    assert fresh
    forged = await site.client().post(f"/login/link/{fresh.group(1)}", data={})
    assert forged.status_code == 403

    # Expired after LIFETIME.
    clock.advance(seconds=LIFETIME.total_seconds() + 1)
    with pytest.raises(NotAuthenticated):
        await site.app.sign_in_links.redeem(fresh.group(1))


async def test_rate_limit_per_address(link_site: tuple[Site, Outbox], clock: FrozenClock) -> None:
    site, outbox = link_site
    for _ in range(MAX_PER_WINDOW + 2):
        await _ask(site, "carol@customer.test")
    await _ask(site, "dave@customer.test")  # another address is not limited by Carol's
    assert [n.recipients[0] for n in outbox.sent] == ["carol@customer.test"] * MAX_PER_WINDOW + [
        "dave@customer.test"
    ]
    clock.advance(seconds=RATE_WINDOW.total_seconds() + timedelta(minutes=1).total_seconds())
    await _ask(site, "carol@customer.test")
    assert len(outbox.sent) == MAX_PER_WINDOW + 2


async def test_unavailable_without_public_url(site: Site) -> None:
    client = site.client()
    assert 'href="/login/link"' not in (await client.get("/login")).text
    assert (await client.get("/login/link")).status_code == 404
    assert (await client.get("/login/link/abc")).status_code == 404

"""Agent extras: split a message into a sub-ticket, and presence on a ticket page (who else
is viewing or replying), seen across two helpdesk instances on one database (both
engines)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import httpx
import pytest
from web_ui_helpers import Site, csrf_of, sign_in, site_fixture  # noqa: F401

from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import AttachmentUpload, NewEntry, NewTicket
from ticketcore.domain.enums import LinkKind
from ticketcore.services.presence import FRESH

pytestmark = pytest.mark.db


async def test_split_a_message_into_a_sub_ticket(site: Site) -> None:
    app, p = site.app, site.people
    file = AttachmentUpload(
        filename="log.txt",
        content_type="text/plain",
        content_base64=base64.b64encode(b"error 42").decode(),
    )
    parent = await app.tickets.create(
        p.customer, NewTicket(subject="Two problems", body="First: the printer.")
    )
    second = await app.tickets.add_entry(
        p.customer,
        parent.id,
        NewEntry(body="Also: my VPN drops every hour.\nSince Monday.", attachments=[file]),
        internal=False,
    )
    agent, csrf = await site.signed_in(p.agent.email)
    page = await agent.get(f"/agent/tickets/{parent.id}")
    assert 'id="split-entry"' in page.text and f'value="{second.id}"' in page.text

    done = await agent.post(
        f"/agent/tickets/{parent.id}/split", data={"_csrf": csrf, "entry_id": str(second.id)}
    )
    assert done.status_code == 303
    child_id = int(done.headers["location"].split("/")[-1].split("?")[0])
    assert done.headers["location"].endswith("?done=split")
    child = await app.tickets.snapshot(child_id)
    assert child.subject == "Also: my VPN drops every hour."
    assert child.requester.id == parent.requester.id
    assert [(link.kind, link.ticket_id) for link in child.links] == [(LinkKind.PARENT, parent.id)]
    entries = await app.tickets.entries(p.agent, child_id)
    assert "Since Monday." in entries[0].body_text
    assert [a.filename for a in entries[0].attachments] == ["log.txt"]
    events = await app.tickets.events(p.agent, parent.id)
    assert [e.data for e in events if e.kind == "split"] == [
        {"entry_id": second.id, "ticket_id": child_id}
    ]
    shown = await agent.get(done.headers["location"])
    assert "Sub-ticket opened" in shown.text and f'href="/agent/tickets/{parent.id}"' in shown.text

    # An entry of another ticket, a customer, or no CSRF token: refused.
    other = await app.tickets.create(p.other, NewTicket(subject="Else", body="x"))
    foreign = (await app.tickets.entries(p.agent, other.id))[0].id
    wrong = await agent.post(
        f"/agent/tickets/{parent.id}/split", data={"_csrf": csrf, "entry_id": str(foreign)}
    )
    assert wrong.status_code == 303 and "error=" in wrong.headers["location"]
    customer, customer_csrf = await site.signed_in(p.customer.email)
    refused = await customer.post(
        f"/agent/tickets/{parent.id}/split",
        data={"_csrf": customer_csrf, "entry_id": str(second.id)},
    )
    assert refused.status_code == 403
    forged = await agent.post(f"/agent/tickets/{parent.id}/split", data={"entry_id": "1"})
    assert forged.status_code == 403


async def test_presence_across_two_helpdesks(
    site: Site, helpdesk_factory: Callable[..., Awaitable[App]], clock: FrozenClock
) -> None:
    from ticketcore.web import create_app

    app, p = site.app, site.people
    ticket = await app.tickets.create(p.customer, NewTicket(subject="Printer", body="x"))
    url = f"/agent/tickets/{ticket.id}"

    # Alex on this helpdesk, Sam on another instance (another process in production).
    alex, alex_csrf = await site.signed_in(p.agent.email)
    second = await helpdesk_factory(web={"secure_cookies": False})
    sam = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(second, run_worker=False)),
        base_url="http://ticketcore.test",
    )
    try:
        sam_csrf = await sign_in(sam, p.agent2.email)
        assert (await alex.get(url)).status_code == 200  # opening the page is a beat
        sam_page = await sam.get(url)
        assert "Alex Agent is viewing this ticket." in sam_page.text
        assert 'data-presence-url="' + url + '/presence"' in sam_page.text

        # Alex starts a draft: the page's script beats "replying".
        beat = await alex.post(url + "/presence", data={"_csrf": alex_csrf, "mode": "replying"})
        assert beat.status_code == 200
        assert "Sam Second is viewing this ticket." in beat.text  # Sam opened it meanwhile
        sam_beat = await sam.post(url + "/presence", data={"_csrf": sam_csrf, "mode": "viewing"})
        assert "Alex Agent is writing a reply" in sam_beat.text
        assert 'data-mode="replying"' in sam_beat.text

        # Without a beat for a while, Alex drops out; a page that says goodbye leaves at once.
        clock.advance(seconds=FRESH.total_seconds() + 1)
        quiet = await sam.post(url + "/presence", data={"_csrf": sam_csrf, "mode": "viewing"})
        assert "Alex Agent" not in quiet.text
        await sam.post(url + "/presence", data={"_csrf": sam_csrf, "leave": "1"})
        again = await alex.post(url + "/presence", data={"_csrf": alex_csrf, "mode": "viewing"})
        assert "Sam Second" not in again.text

        # Bad mode, no CSRF token, a customer: refused.
        bad = await alex.post(url + "/presence", data={"_csrf": alex_csrf, "mode": "dancing"})
        assert bad.status_code == 422
        assert (await alex.post(url + "/presence", data={"mode": "viewing"})).status_code == 403
        customer, customer_csrf = await site.signed_in(p.customer.email)
        denied = await customer.post(url + "/presence", data={"_csrf": customer_csrf})
        assert denied.status_code == 403
        missing = await alex.post(
            "/agent/tickets/99999/presence", data={"_csrf": alex_csrf, "mode": "viewing"}
        )
        assert missing.status_code == 404
        assert csrf_of((await alex.get(url)).text) == alex_csrf
    finally:
        await sam.aclose()

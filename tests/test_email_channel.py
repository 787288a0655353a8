"""The e-mail channel end to end: real SMTP in (our aiosmtpd intake, an aiosmtplib client),
real SMTP out (a MailSink server), threading, screening, idempotency, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiosmtplib
import pytest
import pytest_asyncio

from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewEntry
from ticketcore.plugins.channels.email import EmailChannel, channel_of
from ticketcore.plugins.channels.email.ids import normalise_message_id, ticket_key_of
from ticketcore.plugins.channels.email.testing import MailSink, make_mail
from ticketcore.testing import InsertFailure, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SUPPORT = "support@help.test"
BILLING = "billing@help.test"
CAROL = "carol@customer.test"


def channel_settings(sink_port: int, **more: Any) -> dict[str, Any]:
    """Settings enabling the e-mail channel, sending to the sink."""
    config: dict[str, Any] = {
        "addresses": {SUPPORT: "", BILLING: "support"},
        "from_name": "Help Desk",
        "smtp": {"host": "127.0.0.1", "port": sink_port},
        "smtp_server": {"host": "127.0.0.1", "port": 0},
    }
    config.update(more)
    return {"plugins": {"channels": ["email"]}, "plugin": {"channels": {"email": config}}}


@pytest.fixture
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def mail_app(helpdesk_factory: HelpdeskFactory, sink: MailSink) -> App:
    app = await helpdesk_factory(**channel_settings(sink.port))
    await seed_helpdesk(app)
    return app


@pytest_asyncio.fixture
async def smtp_port(mail_app: App) -> AsyncIterator[int]:
    server = await channel_of(mail_app).start_smtp_server()
    yield server.port
    await server.stop()


async def send(port: int, raw: bytes, rcpt: str = SUPPORT, sender: str = CAROL) -> str:
    """Send raw bytes to our SMTP intake with a real client; returns the server's reply."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        _errors, reply = await client.sendmail(sender, [rcpt], raw)
        return str(reply)


async def tickets(app: App) -> list[dict[str, Any]]:
    return await app.db.fetch("SELECT id, key, subject, status, team FROM ticket ORDER BY id")


async def entries(app: App, ticket_id: int) -> list[dict[str, Any]]:
    return await app.db.fetch(
        "SELECT id, kind, author_kind, body_text, message_id FROM entry WHERE ticket = {} "
        "ORDER BY id",
        ticket_id,
    )


def channel(app: App) -> EmailChannel:
    return channel_of(app)


# --- the must-show scenario ------------------------------------------------------------------


async def test_smtp_new_ticket_reply_threads_and_auto_reply_is_silent(
    mail_app: App, smtp_port: int, sink: MailSink
) -> None:
    reply = await send(smtp_port, make_mail(message_id="<first@customer.test>"))
    assert "accepted (created)" in reply
    [ticket] = await tickets(mail_app)
    assert ticket["subject"] == "Printer on fire"
    [first] = await entries(mail_app, ticket["id"])
    assert first["kind"] == "message_in" and first["message_id"] == "first@customer.test"
    assert "on fire" in first["body_text"]

    await mail_app.jobs.drain()
    [ack] = sink.to(CAROL)
    assert ack["Auto-Submitted"] == "auto-replied"
    assert f"[#{ticket['id']}]" in ack["Subject"]
    assert ack["In-Reply-To"] == "<first@customer.test>"
    ack_id = normalise_message_id(ack["Message-ID"])
    assert ticket_key_of(ack_id) == ticket["key"]
    assert ack["Reply-To"] == f"support+{ticket['key'].replace('-', '')}@help.test"

    # The customer answers the acknowledgement from their mail client: it threads.
    await send(
        smtp_port,
        make_mail(
            subject=f"Re: {ack['Subject']}",
            body="It is still burning.",
            message_id="<second@customer.test>",
            in_reply_to=ack_id,
            references=["first@customer.test", ack_id or ""],
        ),
    )
    assert len(await tickets(mail_app)) == 1
    kinds = [(e["kind"], e["author_kind"]) for e in await entries(mail_app, ticket["id"])]
    assert kinds == [("message_in", "contact"), ("message_in", "contact")]

    # Their vacation responder answers the acknowledgement: nothing opens, nothing is sent.
    await send(
        smtp_port,
        make_mail(
            subject=f"Out of office: {ack['Subject']}",
            body="I am away until Monday.",
            message_id="<vacation@customer.test>",
            in_reply_to=ack_id,
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    await mail_app.jobs.drain()
    [after] = await tickets(mail_app)
    assert after["status"] == ticket["status"]
    assert len(sink.messages) == 1  # still only the acknowledgement
    rows = await mail_app.db.fetch(
        "SELECT outcome, kind FROM email_inbound WHERE message_id = 'vacation@customer.test'"
    )
    assert rows[0]["kind"] == "auto-reply" and rows[0]["outcome"] in ("recorded", "dropped")


async def test_database_failure_answers_451_and_the_retry_makes_one_ticket(
    mail_app: App, smtp_port: int
) -> None:
    # A real failure inside the intake's transaction: the database refuses the entry INSERT
    # after the ticket row was written, so the whole transaction rolls back.
    failure = await InsertFailure.install(mail_app.db, "entry")
    await failure.on()
    raw = make_mail(message_id="<retry-me@customer.test>")
    with pytest.raises(aiosmtplib.SMTPDataError) as failed:
        await send(smtp_port, raw)
    assert failed.value.code == 451
    assert await tickets(mail_app) == []

    await failure.off()
    await send(smtp_port, raw)  # the sender's retry
    await send(smtp_port, raw)  # and a duplicate delivery for good measure
    [ticket] = await tickets(mail_app)
    assert len(await entries(mail_app, ticket["id"])) == 1


async def test_agent_reply_reaches_smtp_with_thread_headers(
    mail_app: App, smtp_port: int, sink: MailSink
) -> None:
    await send(smtp_port, make_mail(message_id="<q1@customer.test>"))
    [ticket] = await tickets(mail_app)
    await send(
        smtp_port,
        make_mail(
            subject=f"Re: Printer on fire [#{ticket['id']}]",
            body="Any news?",
            message_id="<q2@customer.test>",
            in_reply_to="q1@customer.test",
        ),
    )
    await mail_app.jobs.drain()
    async with api_client(mail_app) as api:
        agent_token = await _agent_token(mail_app)
        response = await api.post(
            f"/api/v1/tickets/{ticket['id']}/messages",
            json={
                "body": "We sent a technician.",
                "attachments": [
                    {
                        "filename": "report.txt",
                        "content_type": "text/plain",
                        "content_base64": "aGVsbG8=",
                    }
                ],
            },
            headers={"Authorization": f"Bearer {agent_token}"},
        )
        assert response.status_code == 201, response.text
    await mail_app.jobs.drain()
    replies = [m for m in sink.to(CAROL) if m["Auto-Submitted"] is None]
    [reply] = replies
    assert reply["In-Reply-To"] == "<q2@customer.test>"
    assert "<q1@customer.test>" in reply["References"]
    assert reply["References"].split()[-1] == "<q2@customer.test>"
    assert f"[#{ticket['id']}]" in reply["Subject"] and reply["Subject"].startswith("Re: ")
    assert reply["Reply-To"].startswith("support+")
    our_id = normalise_message_id(reply["Message-ID"])
    assert ticket_key_of(our_id) == ticket["key"]
    [attachment] = list(reply.iter_attachments())
    assert attachment.get_filename() == "report.txt"
    assert attachment.get_content() == "hello"
    # The customer's answer to the agent threads by our Message-ID.
    await send(
        smtp_port,
        make_mail(subject="Re: thanks", body="Thanks!", in_reply_to=our_id),
    )
    assert len(await tickets(mail_app)) == 1
    kinds = [e["kind"] for e in await entries(mail_app, ticket["id"])]
    assert kinds == ["message_in", "message_in", "message_out", "message_in"]


async def _agent_token(app: App) -> str:
    user = await app.auth.user_by_email("agent@example.org")
    return await app.auth.create_token(user.id, "mail-test")


# --- threading rules -------------------------------------------------------------------------


async def test_subject_token_threads_only_for_people_of_the_ticket(mail_app: App) -> None:
    intake = channel(mail_app)
    first = await intake.ingest(make_mail(), source="test")
    number = first.ticket_id
    by_requester = await intake.ingest(
        make_mail(subject=f"Re: Printer on fire [#{number}]", body="more"), source="test"
    )
    assert by_requester.outcome == "threaded" and by_requester.ticket_id == number
    stranger = await intake.ingest(
        make_mail(sender="mallory@evil.test", subject=f"[#{number}] let me in", body="hi"),
        source="test",
    )
    assert stranger.outcome == "created" and stranger.ticket_id != number
    # An agent may answer by mail from their own mail client: a public reply.
    agent = await intake.ingest(
        make_mail(sender="agent@example.org", subject=f"Re: [#{number}]", body="On it."),
        source="test",
    )
    assert agent.outcome == "threaded" and agent.ticket_id == number
    kinds = [e["kind"] for e in await entries(mail_app, number or 0)]
    assert kinds == ["message_in", "message_in", "message_out"]


async def test_reply_address_token_threads(mail_app: App) -> None:
    intake = channel(mail_app)
    first = await intake.ingest(make_mail(), source="test")
    [row] = await mail_app.db.fetch("SELECT key FROM ticket WHERE id = {}", first.ticket_id)
    address = f"support+{row['key'].replace('-', '')}@help.test"
    again = await intake.ingest(
        make_mail(to=address, subject="no token here", body="see above"),
        source="test",
        recipients=[address],
    )
    assert again.outcome == "threaded" and again.ticket_id == first.ticket_id


async def test_reply_to_closed_ticket_opens_a_linked_ticket(mail_app: App) -> None:
    intake = channel(mail_app)
    first = await intake.ingest(make_mail(message_id="<c1@customer.test>"), source="test")
    await mail_app.db.fetch("UPDATE ticket SET status = 'closed' WHERE id = {}", first.ticket_id)
    later = await intake.ingest(
        make_mail(subject="Re: Printer on fire", in_reply_to="c1@customer.test", body="again"),
        source="test",
    )
    assert later.outcome == "created" and later.ticket_id != first.ticket_id
    links = await mail_app.db.fetch(
        "SELECT kind, other FROM ticket_link WHERE ticket = {}", later.ticket_id
    )
    assert {"kind": "related", "other": first.ticket_id} in [dict(r) for r in links]


async def test_address_routes_to_its_team(mail_app: App) -> None:
    result = await channel(mail_app).ingest(
        make_mail(to=BILLING, subject="Invoice"), source="test", recipients=[BILLING]
    )
    [row] = await mail_app.db.fetch(
        "SELECT t.team, tm.slug FROM ticket t JOIN team tm ON tm.id = t.team WHERE t.id = {}",
        result.ticket_id,
    )
    assert row["slug"] == "support"


# --- screening, bounces, loops ---------------------------------------------------------------


async def test_bounce_of_our_reply_is_a_system_note_without_reopening(
    mail_app: App, sink: MailSink
) -> None:
    intake = channel(mail_app)
    first = await intake.ingest(make_mail(), source="test")
    await mail_app.db.fetch("UPDATE ticket SET status = 'resolved' WHERE id = {}", first.ticket_id)
    await mail_app.jobs.drain()
    [ack] = sink.to(CAROL)
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
        "To: support@help.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.customer.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\n\r\n"
        "Final-Recipient: rfc822; carol@customer.test\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {ack['Message-ID']}\r\nSubject: {ack['Subject']}\r\n"
        "--B--\r\n"
    ).encode()
    result = await intake.ingest(bounce, source="test")
    assert result.outcome == "recorded" and result.ticket_id == first.ticket_id
    [row] = await mail_app.db.fetch("SELECT status FROM ticket WHERE id = {}", first.ticket_id)
    assert row["status"] == "resolved"
    kinds = [e["kind"] for e in await entries(mail_app, first.ticket_id or 0)]
    assert kinds == ["message_in", "system"]
    await mail_app.jobs.drain()
    assert len(sink.messages) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-generated"},
        {"X-Autoreply": "yes"},
        {"Precedence": "junk"},
        {"X-Loop": "ticketcore@help.test"},
    ],
)
async def test_robots_never_open_tickets_or_get_answers(
    mail_app: App, sink: MailSink, headers: dict[str, str]
) -> None:
    result = await channel(mail_app).ingest(make_mail(headers=headers), source="test")
    assert result.outcome == "dropped"
    await mail_app.jobs.drain()
    assert await tickets(mail_app) == [] and sink.messages == []


async def test_our_own_message_id_coming_back_is_a_loop(mail_app: App, sink: MailSink) -> None:
    intake = channel(mail_app)
    first = await intake.ingest(make_mail(), source="test")
    await mail_app.jobs.drain()
    [ack] = sink.to(CAROL)
    echoed = await intake.ingest(ack.as_bytes(), source="test")
    assert echoed.outcome in ("dropped", "duplicate") and echoed.kind in ("loop", "auto-reply")
    assert [t["id"] for t in await tickets(mail_app)] == [first.ticket_id]


async def test_list_mail_is_dropped_or_a_silent_ticket_by_policy(
    helpdesk_factory: HelpdeskFactory, sink: MailSink
) -> None:
    def raw() -> bytes:
        return make_mail(headers={"List-Id": "<news.lists.vendor.test>"})

    default = await helpdesk_factory(**channel_settings(sink.port))
    dropped = await channel_of(default).ingest(raw(), source="test")
    assert dropped.outcome == "dropped" and dropped.kind == "bulk-or-list"
    keep = await helpdesk_factory(**channel_settings(sink.port, bulk_policy="ticket"))
    kept = await channel_of(keep).ingest(raw(), source="test")
    assert kept.outcome == "created" and kept.kind == "bulk-or-list"
    await keep.jobs.drain()
    assert sink.messages == []  # never acknowledged


async def test_acknowledgements_are_rate_limited_per_address(
    mail_app: App, sink: MailSink, clock: FrozenClock
) -> None:
    intake = channel(mail_app)
    for i in range(7):
        await intake.ingest(make_mail(subject=f"problem {i}"), source="test")
    await mail_app.jobs.drain()
    assert len(await tickets(mail_app)) == 7
    assert len(sink.to(CAROL)) == 5
    clock.advance(minutes=61)
    await intake.ingest(make_mail(subject="an hour later"), source="test")
    await mail_app.jobs.drain()
    assert len(sink.to(CAROL)) == 6


# --- idempotency and limits ------------------------------------------------------------------


async def test_same_mail_twice_is_one_ticket_with_or_without_message_id(mail_app: App) -> None:
    intake = channel(mail_app)
    with_id = make_mail(message_id="<once@customer.test>")
    without = make_mail(subject="no id", with_message_id=False)
    results = [
        await intake.ingest(raw, source="test") for raw in (with_id, with_id, without, without)
    ]
    assert [r.outcome for r in results] == ["created", "duplicate", "created", "duplicate"]
    assert len(await tickets(mail_app)) == 2


async def test_concurrent_duplicate_deliveries_make_one_ticket(
    helpdesk_factory: HelpdeskFactory, sink: MailSink
) -> None:
    import asyncio

    # Two helpdesks on one database: two processes racing, as with two MX paths.
    one = await helpdesk_factory(**channel_settings(sink.port))
    two = await helpdesk_factory(**channel_settings(sink.port))
    raw = make_mail(message_id="<race@customer.test>")
    results = await asyncio.gather(
        *(channel_of(app).ingest(raw, source="race") for app in (one, two, one, two))
    )
    assert sorted(r.outcome for r in results).count("created") == 1
    assert len(await tickets(one)) == 1


async def test_oversized_attachment_is_named_and_the_rest_kept(
    helpdesk_factory: HelpdeskFactory, sink: MailSink
) -> None:
    app = await helpdesk_factory(**channel_settings(sink.port, max_attachment_bytes=1000))
    raw = make_mail(
        attachments=[
            ("small.txt", "text/plain", b"fine"),
            ("huge.bin", "application/octet-stream", b"x" * 5000),
            ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),
        ]
    )
    result = await channel_of(app).ingest(raw, source="test")
    assert result.outcome == "created"
    files = await app.db.fetch(
        "SELECT filename, size FROM attachment WHERE ticket = {} ORDER BY id", result.ticket_id
    )
    assert [f["filename"] for f in files] == ["small.txt", "photo.png"]
    [entry] = await entries(app, result.ticket_id or 0)
    assert "huge.bin" in entry["body_text"] and "not kept" in entry["body_text"]


async def test_smtp_refuses_unknown_recipients(mail_app: App, smtp_port: int) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send(smtp_port, make_mail(to="nobody@help.test"), rcpt="nobody@help.test")
    reply = await send(
        smtp_port, make_mail(to="support+anything@help.test"), rcpt="support+anything@help.test"
    )
    assert "accepted (created)" in reply
    assert len(await tickets(mail_app)) == 1


async def test_an_unreachable_smtp_server_delays_the_reply_until_a_retry(
    mail_app: App, sink: MailSink, clock: FrozenClock
) -> None:
    first = await channel(mail_app).ingest(
        make_mail(message_id="<r1@customer.test>"), source="test"
    )
    await mail_app.jobs.drain()
    sink.stop()  # the outbound SMTP server goes away
    principal = await mail_app.auth.user_by_email("agent@example.org")
    entry = await mail_app.tickets.add_entry(
        principal, first.ticket_id or 0, NewEntry(body="We are on it."), internal=False
    )
    await mail_app.jobs.drain()
    [job] = await mail_app.db.fetch(
        "SELECT status, attempts, last_error FROM job WHERE kind = 'deliver_reply'"
    )
    assert job["status"] == "pending" and job["attempts"] == 1 and job["last_error"]
    sink.start()
    clock.advance(minutes=10)  # past the backoff
    await mail_app.jobs.drain()
    replies = [m for m in sink.to(CAROL) if m["Auto-Submitted"] is None]
    assert len(replies) == 1 and replies[0]["In-Reply-To"] == "<r1@customer.test>"
    [row] = await mail_app.db.fetch("SELECT message_id FROM entry WHERE id = {}", entry.id)
    assert normalise_message_id(replies[0]["Message-ID"]) == row["message_id"]

"""Customer updates: ticket events become e-mails to the requester, through the outbox and the
``email`` notifier, to a real SMTP server (aiosmtpd) on 127.0.0.1; switched off per
organisation; never for internal notes; one acknowledgement for tickets opened by mail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_notifier_email import Smtp, text_of

from ticketcore.app import App
from ticketcore.domain.commands import NewEntry, NewTicket, RequesterInput, TransitionRequest
from ticketcore.domain.enums import EntryKind
from ticketcore.domain.models import (
    Actor,
    Entry,
    FieldChange,
    Principal,
    Ticket,
    TicketEvent,
)
from ticketcore.plugins.channels.email import channel_of
from ticketcore.plugins.channels.email.testing import make_mail
from ticketcore.plugins.notifiers import customer_updates as cu
from ticketcore.testing import Seed, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
CAROL = "carol@customer.test"
PORTAL = "https://help.example/portal/tickets/{id}"
SURVEY = "https://help.example/survey/{key}"


@pytest.fixture(autouse=True)
def fresh_entry_point_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stevedore's entry-point cache in a folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp().start()
    yield server
    server.stop()


def settings(
    port: int, *, email_channel: dict[str, Any] | None = None, **updates: Any
) -> dict[str, Any]:
    """customer_updates + the email notifier (SMTP on ``port``); optionally the e-mail channel
    sending to the same server."""
    config: dict[str, Any] = {
        "plugins": {"plugins": ["customer_updates"], "notifiers": ["email"]},
        "plugin": {
            "plugins": {
                "customer_updates": {"portal_url": PORTAL, "survey_url": SURVEY, **updates}
            },
            "notifiers": {
                "email": {
                    "host": "127.0.0.1",
                    "port": port,
                    "from_address": "support@help.example",
                    "timeout_seconds": 5,
                }
            },
        },
    }
    if email_channel is not None:
        config["plugins"]["channels"] = ["email"]
        config["plugin"]["channels"] = {
            "email": {
                "addresses": {"support@help.test": ""},
                "smtp": {"host": "127.0.0.1", "port": port},
                **email_channel,
            }
        }
    return config


def kinds_to(smtp: Smtp, address: str = CAROL) -> list[str]:
    """The notification kind of each mail ``address`` got (``ack`` for the channel's own)."""
    return [m["X-TicketCore-Notification"] or "ack" for m in smtp.mailbox.to(address)]


def last_mail(smtp: Smtp, address: str = CAROL) -> EmailMessage:
    return smtp.mailbox.to(address)[-1]


async def open_ticket(app: App, seed: Seed, email: str = CAROL, subject: str = "VPN down") -> int:
    ticket = await app.tickets.create(
        seed.agent,
        NewTicket(
            subject=subject,
            body="I cannot connect to the VPN.",
            requester=RequesterInput(email=email, name="Carol Customer"),
        ),
    )
    return ticket.id


async def move(app: App, who: Principal, ticket_id: int, name: str, comment: str = "") -> None:
    await app.tickets.transition(
        who, ticket_id, TransitionRequest(transition=name, comment=comment or None)
    )


async def redeliver_every_event(app: App) -> int:
    """Put every delivered ``ticket_event`` job back in the queue as if never delivered
    (the worker died before recording success), then run the worker again."""
    rows = await app.db.fetch("SELECT id, payload FROM job WHERE kind = 'ticket_event'")
    async with app.db.transaction():
        for row in rows:
            payload = msgspec.json.decode(row["payload"]) if isinstance(row["payload"], str) else {}
            await app.db.fetch(
                "UPDATE job SET status = 'pending', run_at = {}, attempts = 0, payload = {} "
                "WHERE id = {}",
                app.clock.now(),
                msgspec.json.encode({"event_id": payload["event_id"]}).decode(),
                row["id"],
            )
    await app.jobs.drain()
    return len(rows)


# --- every kind, by mail, with the right template ---------------------------------------------


@pytest.mark.db
async def test_each_update_reaches_the_requester_by_mail_once(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port))
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(app, seed)
    key = (await app.tickets.snapshot(ticket_id)).key
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created"]
    created = last_mail(smtp)
    assert created["Subject"] == f"[#{ticket_id}] VPN down"
    body = text_of(created)
    assert f"opened ticket #{ticket_id}" in body
    assert f"follow your request here: https://help.example/portal/tickets/{ticket_id}" in body

    await app.tickets.add_entry(
        seed.agent, ticket_id, NewEntry(body="Please restart the client."), internal=False
    )
    await app.jobs.drain()
    reply = last_mail(smtp)
    assert reply["X-TicketCore-Notification"] == "agent_reply"
    assert reply["Subject"] == f"Re: [#{ticket_id}] VPN down"
    assert "Alex Agent has replied" in text_of(reply)
    assert "Please restart the client." in text_of(reply)

    await move(app, seed.agent, ticket_id, "wait_for_customer")
    await app.jobs.drain()
    waiting = last_mail(smtp)
    assert waiting["X-TicketCore-Notification"] == "status_changed"
    assert 'has changed to "waiting for your reply"' in text_of(waiting)

    await move(app, seed.agent, ticket_id, "resolve", comment="The VPN gateway was restarted.")
    await app.jobs.drain()
    resolved = last_mail(smtp)
    assert resolved["Subject"] == f"Resolved: [#{ticket_id}] VPN down"
    text = text_of(resolved)
    assert "The VPN gateway was restarted." in text
    assert "Could you confirm that the problem is solved?" in text
    portal = f"https://help.example/portal/tickets/{ticket_id}"
    assert f"Please let us know here: {portal}" in text
    assert f"or reopen it here: {portal}" in text

    await move(app, seed.agent, ticket_id, "close")
    await app.jobs.drain()
    closed = last_mail(smtp)
    assert closed["Subject"] == f"Closed: [#{ticket_id}] VPN down"
    assert f"Tell us in one minute: https://help.example/survey/{key}" in text_of(closed)

    expected = ["ticket_created", "agent_reply", "status_changed", "ticket_resolved"]
    assert kinds_to(smtp) == [*expected, "ticket_closed"]
    assert all(m["To"] == CAROL for m in smtp.mailbox.to(CAROL))

    # Every ticket event delivered again (a worker crashed before recording success):
    # the notify jobs are keyed by event, so nothing is queued or sent twice.
    assert await redeliver_every_event(app) >= 5
    assert kinds_to(smtp) == [*expected, "ticket_closed"]
    jobs = await app.db.fetch("SELECT idempotency_key, status FROM job WHERE kind = 'notify'")
    assert len(jobs) == 5 and {j["status"] for j in jobs} == {"done"}
    assert all(j["idempotency_key"].startswith("customer_update:") for j in jobs)


@pytest.mark.db
async def test_french_templates_and_status_changes_that_do_not_matter(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port, language="fr", statuses=["on_hold"]))
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(app, seed)
    await move(app, seed.agent, ticket_id, "open")  # not listed: silent
    await move(app, seed.agent, ticket_id, "wait_for_customer")  # not listed: silent
    await move(app, seed.agent, ticket_id, "hold")
    await app.jobs.drain()
    assert sorted(kinds_to(smtp)) == ["status_changed", "ticket_created"]
    mails = {m["X-TicketCore-Notification"]: text_of(m) for m in smtp.mailbox.to(CAROL)}
    assert "Bonjour" in mails["ticket_created"]
    assert "a changé : « en attente »." in mails["status_changed"]


@pytest.mark.db
async def test_changes_the_customer_made_and_merges_are_not_announced(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port))
    seed = await seed_helpdesk(app)
    ticket = await app.tickets.create(seed.customer, NewTicket(subject="Mine", body="Help"))
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created"]  # opened in the portal: still told the number
    await move(app, seed.customer, ticket.id, "close")  # the customer closed it themselves
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created"]


# --- switched off --------------------------------------------------------------------------


@pytest.mark.db
async def test_kinds_switched_off_for_an_organisation_are_not_sent(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port, disabled=["status_changed"]))
    seed = await seed_helpdesk(app)
    quiet = await app.directory.create_organisation("Quiet Corp", "quiet.test")
    chatty = await app.directory.create_organisation("Chatty Ltd", "chatty.test")
    await app.directory.create_contact("Quinn", "quinn@quiet.test", organisation_id=quiet)
    await app.directory.create_contact("Chad", "chad@chatty.test", organisation_id=chatty)
    async with api_client(app) as api:
        url = f"/api/v1/organisations/{quiet}/notification-preferences"
        change = {"preferences": {"ticket_created": False, "ticket_resolved": False}}
        denied = await api.put(url, json=change, headers=seed.headers("agent"))
        assert denied.status_code == 403
        done = await api.put(url, json=change, headers=seed.headers("admin"))
        assert done.status_code == 200, done.text
        assert done.json()["preferences"] == {"ticket_created": False, "ticket_resolved": False}
        wrong = await api.put(
            url, json={"preferences": {"survey": False}}, headers=seed.headers("admin")
        )
        assert wrong.status_code == 422 and wrong.json()["field"] == "preferences.survey"
        on = {"preferences": {"status_changed": True}}  # the global default is off
        chatty_url = f"/api/v1/organisations/{chatty}/notification-preferences"
        assert (await api.put(chatty_url, json=on, headers=seed.headers("admin"))).is_success
        read = await api.get(url, headers=seed.headers("agent"))
        assert read.json()["preferences"] == {"ticket_created": False, "ticket_resolved": False}
        missing = await api.get(
            "/api/v1/organisations/999/notification-preferences", headers=seed.headers("admin")
        )
        assert missing.status_code == 404

    for address in ("quinn@quiet.test", "chad@chatty.test", CAROL):
        ticket_id = await open_ticket(app, seed, email=address)
        await app.jobs.drain()  # one step at a time: mails then arrive in order
        for step in ("wait_for_customer", "resolve", "close"):
            await move(app, seed.agent, ticket_id, step)
            await app.jobs.drain()
    # Quiet Corp switched off "created" and "resolved"; the helpdesk switched off status
    # changes, which Chatty Ltd switched back on; Carol (no organisation) has the defaults.
    assert kinds_to(smtp, "quinn@quiet.test") == ["ticket_closed"]
    assert kinds_to(smtp, "chad@chatty.test") == [
        "ticket_created",
        "status_changed",
        "ticket_resolved",
        "ticket_closed",
    ]
    assert kinds_to(smtp, CAROL) == ["ticket_created", "ticket_resolved", "ticket_closed"]
    # Nothing switched off was even queued.
    keys = await app.db.fetch("SELECT COUNT(*) AS n FROM job WHERE kind = 'notify'")
    assert keys[0]["n"] == 1 + 4 + 3

    # Back to the default (null): Quiet Corp is told of new tickets again.
    await app.notification_prefs.set(seed.admin, quiet, {"ticket_created": None})
    await open_ticket(app, seed, email="quinn@quiet.test")
    await app.jobs.drain()
    assert kinds_to(smtp, "quinn@quiet.test") == ["ticket_closed", "ticket_created"]


# --- internal notes never notify the customer ---------------------------------------------


@pytest.mark.db
async def test_internal_notes_and_system_entries_never_notify_the_customer(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port))
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(app, seed)
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created"]
    await app.tickets.add_entry(
        seed.agent,
        ticket_id,
        NewEntry(body="Internal: customer is on the old client, @agent2 knows why."),
        internal=True,
    )
    await app.tickets.add_system_entry(
        ticket_id, "Delivery to the printer failed.", actor=Actor.system("test")
    )
    # a note on a resolved ticket, then one more note: still nothing for the customer
    await move(app, seed.agent, ticket_id, "resolve")
    await app.tickets.add_entry(
        seed.agent2, ticket_id, NewEntry(body="Note after resolving."), internal=True
    )
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created", "ticket_resolved"]
    for mail in smtp.mailbox.to(CAROL):
        assert "Internal" not in text_of(mail) and "printer failed" not in text_of(mail)
    notify = await app.db.fetch("SELECT payload FROM job WHERE kind = 'notify'")
    assert len(notify) == 2


async def test_an_event_pointing_at_a_note_is_never_an_agent_reply() -> None:
    """Pure decision: the entry decides, not the event's claim (a forged or buggy event
    saying ``message_added`` for a note gives no update)."""
    config = cu.Config()
    channels = cu.Channels()
    event = TicketEvent(
        id=1,
        ticket_id=5,
        kind="message_added",
        actor=Actor(kind="user", id=2, name="Alex"),
        created_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        data={"entry_id": 9, "entry_kind": "message_out"},
    )
    ticket = msgspec.convert(
        {
            "id": 5,
            "key": "k",
            "subject": "S",
            "status": "open",
            "priority": "normal",
            "category": None,
            "channel": "api",
            "requester": {"id": 1, "name": "C", "email": CAROL},
            "team_id": None,
            "assignee_id": None,
            "tags": [],
            "custom_fields": {},
            "version": 1,
            "created_at": "2026-01-05T09:00:00Z",
            "updated_at": "2026-01-05T09:00:00Z",
        },
        Ticket,
    )

    def entry(kind: EntryKind) -> Entry:
        return Entry(
            id=9,
            ticket_id=5,
            kind=kind,
            author=event.actor,
            body_text="secret",
            body_html=None,
            created_at=event.created_at,
        )

    assert cu.update_for(event, ticket, entry(EntryKind.NOTE), config, channels) is None
    assert cu.update_for(event, ticket, entry(EntryKind.SYSTEM), config, channels) is None
    assert cu.update_for(event, ticket, entry(EntryKind.MESSAGE_IN), config, channels) is None
    update = cu.update_for(event, ticket, entry(EntryKind.MESSAGE_OUT), config, channels)
    assert update is not None and update.kind == "agent_reply"
    for kind in ("note_added", "system_note_added", "sla_breach", "updated", "routed"):
        other = msgspec.structs.replace(event, kind=kind)
        assert cu.update_for(other, ticket, entry(EntryKind.NOTE), config, channels) is None
    status = msgspec.structs.replace(
        event, kind="status_changed", changes={"status": FieldChange("open", "closed")}
    )
    merged = msgspec.structs.replace(status, data={"cause": "merged"})
    assert cu.update_for(merged, ticket, None, config, channels) is None


# --- the e-mail channel acknowledges once --------------------------------------------------


@pytest.mark.db
@pytest.mark.parametrize("acknowledge", [True, False])
async def test_a_ticket_opened_by_mail_is_acknowledged_once(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp, acknowledge: bool
) -> None:
    app = await helpdesk_factory(**settings(smtp.port, email_channel={"acknowledge": acknowledge}))
    seed = await seed_helpdesk(app)
    result = await channel_of(app).ingest(
        make_mail(message_id="<vpn@customer.test>"), recipients=["support@help.test"]
    )
    assert result.ticket_id is not None
    await app.jobs.drain()
    # The channel's own acknowledgement, or (channel acknowledgements off) ours: never both.
    assert kinds_to(smtp) == (["ack"] if acknowledge else ["ticket_created"])
    if acknowledge:
        assert smtp.mailbox.to(CAROL)[0]["Auto-Submitted"] == "auto-replied"

    # An agent's reply on a mail ticket goes out once, by the channel (threaded), not again
    # as a notification.
    await app.tickets.add_entry(
        seed.agent, result.ticket_id, NewEntry(body="We are on it."), internal=False
    )
    await app.jobs.drain()
    assert kinds_to(smtp)[1:] == ["ack"]  # the channel's mail carries no notification kind
    assert "We are on it." in text_of(last_mail(smtp))

    # A ticket opened in the portal in the same helpdesk is still announced.
    await app.tickets.create(seed.customer, NewTicket(subject="Portal", body="Hello"))
    await app.jobs.drain()
    assert kinds_to(smtp)[-1] == "ticket_created"


def test_channel_detection_and_explicit_settings() -> None:
    from ticketcore.config import settings_from_mapping

    with_mail = settings_from_mapping(
        {
            "plugins": {"channels": ["email"]},
            "plugin": {"channels": {"email": {"addresses": {"s@x.test": ""}}}},
        },
        env={},
    )
    assert cu.channels_from(cu.Config(), with_mail) == cu.Channels(
        acknowledged=frozenset({"email"}), replies=frozenset({"email"})
    )
    assert cu.channels_from(cu.Config(), settings_from_mapping({}, env={})) == cu.Channels()
    explicit = cu.Config(acknowledged_channels=[], reply_channels=["chat"])
    assert cu.channels_from(explicit, with_mail) == cu.Channels(replies=frozenset({"chat"}))
    with pytest.raises(ValueError, match="unknown kind"):
        cu.Config(disabled=["mentioned"])
    with pytest.raises(ValueError, match="unknown status"):
        cu.Config(statuses=["done"])
    with pytest.raises(ValueError, match="placeholders"):
        cu.Config(portal_url="https://x.test/{ticket}")


async def test_a_reply_to_an_update_threads_by_its_message_id(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    # The notifier and the e-mail channel share the Message-ID domain, as one helpdesk does.
    app = await helpdesk_factory(
        **settings(smtp.port, email_channel={"message_id_domain": "help.example"})
    )
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(app, seed)
    await move(app, seed.agent, ticket_id, "wait_for_customer", "Which VPN client?")
    await app.jobs.drain()
    assert kinds_to(smtp) == ["ticket_created", "status_changed"]  # in the order they happened
    update = last_mail(smtp)
    assert update["X-TicketCore-Notification"] == "status_changed"
    # The customer answers from a client that rewrote the subject (no ticket token left).
    answer = await channel_of(app).ingest(
        make_mail(subject="my answer", body="The blue one.", in_reply_to=update["Message-ID"]),
        source="test",
    )
    assert answer.outcome == "threaded" and answer.ticket_id == ticket_id

"""The e-mail notifier: Jinja2 templates per kind and language, sent by SMTP (aiosmtplib)
to a real SMTP server (aiosmtpd) on 127.0.0.1, through the job worker."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ticketcore import ConfigError, Notification
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.config import REDACTED, settings_from_mapping
from ticketcore.plugin_manager import build_plugin_manager
from ticketcore.plugins.notifiers import email as email_notifier
from ticketcore.plugins.notifiers.testing import send_notification
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
KINDS = [
    "ticket_created",
    "agent_reply",
    "status_changed",
    "ticket_resolved",
    "ticket_closed",
    "sla_warning",
    "sla_breach",
    "default",
]


def text_of(message: EmailMessage) -> str:
    """The decoded text body with SMTP's CRLF line ends turned back into newlines."""
    content: str = message.get_content()
    return content.replace("\r\n", "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses a recipient the first N times (450)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: dict[str, int] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.refuse.get(address, 0) > 0:
            self.refuse[address] -= 1
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, rcpts, m in self.messages if address in rcpts]


class Smtp:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in its own thread)."""

    def __init__(self, port: int | None = None, **kwargs: Any) -> None:
        self.mailbox = Mailbox()
        self.port = port or free_port()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> Smtp:
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **self.kwargs
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp().start()
    yield server
    server.stop()


def note(kind: str = "ticket_created", key: str = "created:42", **data: Any) -> Notification:
    return Notification(
        kind=kind,
        ticket_id=42,
        recipients=["carol@customer.test"],
        subject="Printer on fire",
        body="The printer on floor 2 is on fire.",
        idempotency_key=key,
        data={"ticket_url": "https://help.example/t/42", **data},
    )


async def job_rows(app: App) -> list[dict[str, Any]]:
    return await app.db.fetch("SELECT status, last_error FROM job WHERE kind = 'notify'")


def settings(port: int, **more: Any) -> dict[str, Any]:
    return {
        "plugins": {"notifiers": ["email"]},
        "plugin": {
            "notifiers": {
                "email": {
                    "host": "127.0.0.1",
                    "port": port,
                    "from_address": "support@help.example",
                    "from_name": "Example Support",
                    "timeout_seconds": 5,
                    **more,
                }
            }
        },
    }


# --- templates (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_shipped_template_renders_with_and_without_data(language: str, kind: str) -> None:
    assert (email_notifier.TEMPLATES / language / f"{kind}.txt").is_file()
    plugin = email_notifier.create(
        email_notifier.Config(from_address="support@help.example", language=language)
    )
    full = note(
        kind,
        ticket_number="#42",
        survey_url="https://help.example/survey/42",
        confirm_url="https://help.example/t/42/confirm",
        status="waiting on you",
        due_at="2026-01-05 09:30 UTC",
        target="resolution",
        agent_name="Alex",
    )
    bare = Notification(
        kind=kind, ticket_id=None, recipients=[], subject="Hi", body="Text", idempotency_key="k"
    )
    for n in (full, bare):
        mail = plugin.render(n, "carol@customer.test")
        assert mail.template == f"{language}/{kind}.txt"
        assert mail.subject and "Subject" not in mail.body
        assert n.body in mail.body
        assert "None" not in mail.subject + mail.body and "{" not in mail.body
        assert "\n\n\n" not in mail.body
    if kind == "ticket_closed":
        assert "https://help.example/survey/42" in plugin.render(full, "x@y.test").body


def test_language_fallbacks_and_unknown_kinds() -> None:
    plugin = email_notifier.create(email_notifier.Config(from_address="s@help.example"))
    assert plugin.render(note(language="fr"), "x").template == "fr/ticket_created.txt"
    assert plugin.render(note(language="de"), "x").template == "en/ticket_created.txt"
    assert plugin.render(note("mentioned"), "x").template == "en/default.txt"
    assert plugin.render(note("../../etc/passwd"), "x").template == "en/default.txt"
    assert plugin.render(note(language="../fr"), "x").template == "en/ticket_created.txt"


def test_settings_are_checked_at_start(tmp_path: Path) -> None:
    config = email_notifier.Config
    with pytest.raises(ValueError, match="not both"):
        email_notifier.create(config(from_address="s@x.example", tls=True, starttls=True))
    with pytest.raises(ValueError, match="username and password"):
        email_notifier.create(config(from_address="s@x.example", username="u"))
    with pytest.raises(ValueError, match="language 'de'"):
        email_notifier.create(config(from_address="s@x.example", language="de"))
    with pytest.raises(ValueError, match="not a folder"):
        email_notifier.create(
            config(from_address="s@x.example", templates_dir=str(tmp_path / "no"))
        )
    (tmp_path / "de").mkdir()  # an organisation may add a language in its override folder
    (tmp_path / "de" / "default.txt").write_text("{{ body }", encoding="utf-8")
    with pytest.raises(
        ValueError, match=re.escape("template de/default.txt, line 1: unexpected '}'")
    ):
        email_notifier.create(
            config(from_address="s@x.example", templates_dir=str(tmp_path), language="de")
        )
    (tmp_path / "de" / "default.txt").write_text("{{ body }}", encoding="utf-8")
    email_notifier.create(
        config(from_address="s@x.example", templates_dir=str(tmp_path), language="de")
    )


# --- through the job worker and SMTP ----------------------------------------------------------


@pytest.mark.db
async def test_english_mail_is_sent_one_message_per_recipient(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port, reply_to="support@help.example"))
    n = msgspec.structs.replace(note(), recipients=["carol@customer.test", "dan@customer.test"])
    await send_notification(app, n)

    assert [r["status"] for r in await job_rows(app)] == ["done"]
    assert [(frm, rcpts) for frm, rcpts, _ in smtp.mailbox.messages] == [
        ("support@help.example", ["carol@customer.test"]),
        ("support@help.example", ["dan@customer.test"]),
    ]
    carol, dan = (m for _, _, m in smtp.mailbox.messages)
    assert carol["From"] == "Example Support <support@help.example>"
    assert carol["To"] == "carol@customer.test" and "dan@" not in str(carol)
    assert carol["Reply-To"] == "support@help.example"
    assert carol["Subject"] == "[#42] Printer on fire"
    assert carol["Auto-Submitted"] == "auto-generated"
    assert carol["X-Auto-Response-Suppress"] == "All"
    assert carol["X-TicketCore-Ticket"] == "42"
    assert carol["Date"]
    assert carol["Message-ID"].startswith("<notify.") and carol["Message-ID"].endswith(
        "@help.example>"
    )
    assert carol["Message-ID"] != dan["Message-ID"]
    body = text_of(carol)
    assert "We have received your request and opened ticket #42." in body
    assert "The printer on floor 2 is on fire." in body
    assert "You can follow your request here: https://help.example/t/42" in body


@pytest.mark.db
async def test_french_mail_uses_the_fr_templates(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp
) -> None:
    app = await helpdesk_factory(**settings(smtp.port, language="fr"))
    await send_notification(
        app, note("ticket_closed", key="closed:42", survey_url="https://help.example/s/42")
    )
    # a notification may ask for another language (e.g. the customer's)
    await send_notification(app, note("ticket_resolved", key="resolved:42", language="en"))

    closed, resolved = smtp.mailbox.to("carol@customer.test")
    assert closed["Subject"] == "Clos : [#42] Printer on fire"
    text = text_of(closed)
    assert text.startswith("Bonjour,\n\nVotre demande #42 est maintenant close.")
    assert "questionnaire de satisfaction en une minute : https://help.example/s/42" in text
    assert "Merci de nous avoir contactés." in text
    assert closed.get_content_charset() == "utf-8"
    assert resolved["Subject"] == "Resolved: [#42] Printer on fire"
    assert "Could you confirm that the problem is solved?" in text_of(resolved)


@pytest.mark.db
async def test_the_organisations_template_folder_wins(
    helpdesk_factory: HelpdeskFactory, smtp: Smtp, tmp_path: Path
) -> None:
    overrides = tmp_path / "mail-templates"
    (overrides / "fr").mkdir(parents=True)
    (overrides / "fr" / "ticket_created.txt").write_text(
        "Subject: Demande {{ ticket_number }} enregistrée\n\n"
        "Chère cliente, cher client,\n{{ body }}\nACME Assistance\n",
        encoding="utf-8",
    )
    app = await helpdesk_factory(**settings(smtp.port, language="fr", templates_dir=str(overrides)))
    await send_notification(app, note("ticket_created", key="created:42"))
    await send_notification(app, note("agent_reply", key="reply:42", agent_name="Alex"))

    created, reply = smtp.mailbox.to("carol@customer.test")
    assert created["Subject"] == "Demande #42 enregistrée"
    assert text_of(created) == (
        "Chère cliente, cher client,\nThe printer on floor 2 is on fire.\nACME Assistance\n"
    )
    assert reply["Subject"] == "Re: [#42] Printer on fire"  # not overridden: shipped fr
    assert "Alex a répondu à votre demande #42 :" in text_of(reply)


@pytest.mark.db
async def test_refused_recipient_is_retried_alone_and_down_server_recovers(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    port = free_port()
    app = await helpdesk_factory(**settings(port))
    n = msgspec.structs.replace(note(), recipients=["carol@customer.test", "busy@customer.test"])

    await send_notification(app, n)  # no server listening yet
    (row,) = await job_rows(app)
    assert row["status"] == "pending" and "notifiers.email" in row["last_error"]

    server = Smtp(port=port).start()
    try:
        server.mailbox.refuse["busy@customer.test"] = 1
        clock.advance(minutes=1)
        await app.jobs.drain()
        (row,) = await job_rows(app)
        assert row["status"] == "pending"
        assert "busy@customer.test: 450 4.2.1 Mailbox busy" in row["last_error"]
        assert len(server.mailbox.to("carol@customer.test")) == 1

        clock.advance(minutes=1)
        await app.jobs.drain()
    finally:
        server.stop()

    assert len(server.mailbox.to("carol@customer.test")) == 1, "not sent twice"
    (busy,) = server.mailbox.to("busy@customer.test")
    assert busy["Subject"] == "[#42] Printer on fire"
    assert [r["status"] for r in await job_rows(app)] == ["done"]


@pytest.mark.db
async def test_smtp_login_and_password_redacted(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    logins: list[tuple[str, str]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = auth_data.password == b"pw-0001-secret"
        return AuthResult(success=ok, handled=False)

    server = Smtp(authenticator=authenticator, auth_require_tls=False).start()
    try:
        app = await helpdesk_factory(
            env={"TC_SMTP_PASSWORD": "pw-0001-secret"},
            **settings(server.port, username="helpdesk", password={"env": "TC_SMTP_PASSWORD"}),
        )
        await send_notification(app, note())
    finally:
        server.stop()

    assert logins == [("helpdesk", "pw-0001-secret")]
    assert len(server.mailbox.to("carol@customer.test")) == 1
    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        response = await client.get("/api/v1/plugins", headers=seed.headers("admin"))
    (shown,) = response.json()
    assert shown["config"]["password"] == REDACTED
    assert "pw-0001-secret" not in response.text


def test_misconfigured_email_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="create\\(\\) failed: ValueError: choose tls"):
        build_plugin_manager(settings_from_mapping(settings(25, tls=True, starttls=True), env={}))

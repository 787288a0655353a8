"""The Slack/Mattermost incoming-webhook notifier, through the job worker, against a real
HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from ticketcore import Notification
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.config import REDACTED
from ticketcore.plugins.notifiers import chat
from ticketcore.plugins.notifiers.testing import (
    HttpReceiver,
    send_notification,
)
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]


def note(**data: Any) -> Notification:
    return Notification(
        kind="sla_breach",
        ticket_id=42,
        recipients=[],
        subject="Server outage <prod> & DB",
        body="Not resolved within 30 minutes.\nEscalated to the IT manager.",
        idempotency_key="sla_breach:42:resolution",
        data=data,
    )


async def job_rows(app: App) -> list[dict[str, Any]]:
    return await app.db.fetch("SELECT status, last_error FROM job WHERE kind = 'notify'")


# --- text (pure) ------------------------------------------------------------------------------


def test_slack_text_links_the_ticket_and_escapes_control_characters() -> None:
    n = note(ticket_number="#5023", ticket_url="https://help.example/t/42")
    assert chat.chat_text(n, "slack") == (
        "<https://help.example/t/42|#5023> *Server outage &lt;prod&gt; &amp; DB*\n"
        "Not resolved within 30 minutes.\nEscalated to the IT manager."
    )


def test_markdown_text_for_mattermost_and_fallbacks() -> None:
    n = note(ticket_url="https://help.example/t/42")
    assert chat.chat_text(n, "markdown") == (
        "[#42](https://help.example/t/42) **Server outage <prod> & DB**\n"
        "Not resolved within 30 minutes.\nEscalated to the IT manager."
    )
    bare = msgspec.structs.replace(note(), ticket_id=None, body="")
    assert chat.chat_text(bare, "slack") == "*Server outage &lt;prod&gt; &amp; DB*"
    assert chat.chat_text(note(), "markdown").startswith("#42 **Server outage")


# --- through the job worker -------------------------------------------------------------------


@pytest.mark.db
async def test_message_is_posted_to_every_webhook(
    helpdesk_factory: HelpdeskFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with HttpReceiver() as slack, HttpReceiver() as mattermost:
        app = await helpdesk_factory(
            plugins={"notifiers": ["chat"]},
            plugin={
                "notifiers": {
                    "chat": {
                        "webhook_urls": [
                            slack.url("/services/T000/B000/tok-slack"),
                            mattermost.url("/hooks/tok-mm"),
                        ],
                        "username": "TicketCore",
                        "icon_emoji": ":rotating_light:",
                    }
                }
            },
        )
        n = note(ticket_number="#42", ticket_url="https://help.example/t/42")
        with caplog.at_level(logging.DEBUG):  # every logger, httpx's request log too
            await send_notification(app, n)

    expected = {
        "text": chat.chat_text(n, "slack"),
        "username": "TicketCore",
        "icon_emoji": ":rotating_light:",
    }
    (to_slack,) = slack.requests
    (to_mm,) = mattermost.requests
    assert (to_slack.path, to_mm.path) == ("/services/T000/B000/tok-slack", "/hooks/tok-mm")
    assert to_slack.json() == expected and to_mm.json() == expected
    assert to_slack.headers["content-type"] == "application/json"
    assert [r["status"] for r in await job_rows(app)] == ["done"]
    assert "HTTP Request: POST" in caplog.text and "delivered sla_breach:42" in caplog.text
    assert "tok-slack" not in caplog.text and "tok-mm" not in caplog.text


@pytest.mark.db
async def test_failing_chat_is_retried_and_never_repeats_the_webhook_notifier(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    """The mirror of the webhook test: here chat fails (HTTP 404, a revoked webhook) and the
    signed webhook is healthy."""
    async with HttpReceiver(fail_first=1, fail_status=404) as slack, HttpReceiver() as hooks:
        app = await helpdesk_factory(
            plugins={"notifiers": ["chat", "webhook"]},
            plugin={
                "notifiers": {
                    "chat": {"webhook_urls": [slack.url("/services/T/B/secret-path")]},
                    "webhook": {"urls": [hooks.url()], "secret": "s"},
                }
            },
        )
        await send_notification(app, note())
        (row,) = await job_rows(app)
        assert row["status"] == "pending"
        assert "notifiers.chat: DeliveryFailed: 1 of 1 URL(s) failed: " in row["last_error"]
        assert f"http://127.0.0.1:{slack.port}/…: HTTP 404" in row["last_error"]
        assert "secret-path" not in row["last_error"]

        clock.advance(minutes=1)
        await app.jobs.drain()

    assert [r.status for r in slack.requests] == [404, 200]
    assert len(hooks.requests) == 1
    assert [r["status"] for r in await job_rows(app)] == ["done"]


@pytest.mark.db
async def test_webhook_urls_from_the_environment_are_redacted(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    url = "https://hooks.slack.example/services/T000/B000/tok-0001-secret"
    app = await helpdesk_factory(
        env={"TC_SLACK_URL": url},
        plugins={"notifiers": ["chat"]},
        plugin={
            "notifiers": {"chat": {"webhook_urls": [{"env": "TC_SLACK_URL"}], "format": "markdown"}}
        },
    )
    plugin = app.pm.get_plugin("notifiers.chat")
    assert isinstance(plugin, chat.Chat) and plugin.config.webhook_urls == [url]
    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        response = await client.get("/api/v1/plugins", headers=seed.headers("admin"))

    assert response.status_code == 200, response.text
    (shown,) = response.json()
    assert shown["config"] == {"webhook_urls": [REDACTED], "format": "markdown"}
    assert "tok-0001-secret" not in response.text

"""The signed-webhook notifier, end to end through the job worker, against a real HTTP
receiver on 127.0.0.1. Plugins are enabled by configuration and discovered through their
``ticketcore.notifiers`` entry points (declared for the test if not installed yet)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from ticketcore import Notification
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.config import REDACTED
from ticketcore.plugins.notifiers import webhook
from ticketcore.plugins.notifiers.testing import (
    HttpReceiver,
    send_notification,
)
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]
SECRET = "whsec-0001-very-secret"


def note(kind: str = "sla_warning", key: str = "sla_warning:1", **data: Any) -> Notification:
    return Notification(
        kind=kind,
        ticket_id=1,
        recipients=["oncall@example.org"],
        subject="SLA at risk",
        body="Ticket #1 is due in 10 minutes",
        idempotency_key=key,
        data=data or {"minutes": 10},
    )


async def notify_jobs(app: App) -> list[dict[str, Any]]:
    rows = await app.db.fetch(
        "SELECT status, payload, attempts, last_error FROM job WHERE kind = 'notify' ORDER BY id"
    )
    for row in rows:
        if isinstance(row["payload"], str):
            row["payload"] = msgspec.json.decode(row["payload"])
    return rows


def webhook_plugin(app: App) -> webhook.Webhook:
    obj = app.pm.get_plugin("notifiers.webhook")
    assert isinstance(obj, webhook.Webhook)
    return obj


# --- signatures (pure) ------------------------------------------------------------------------


def test_signature_is_hmac_of_timestamp_dot_body_and_verifies() -> None:
    import hashlib
    import hmac

    body = b'{"kind":"sla_warning"}'
    expected = hmac.new(b"s3cret", b"1767600000." + body, hashlib.sha256).hexdigest()
    assert webhook.sign("s3cret", 1767600000, body) == f"sha256={expected}"

    sig = webhook.sign("s3cret", "1767600000", body)
    now = 1767600000 + 10
    assert webhook.verify_signature("s3cret", body, "1767600000", sig, now=now)
    assert not webhook.verify_signature("other", body, "1767600000", sig, now=now)
    assert not webhook.verify_signature("s3cret", body + b" ", "1767600000", sig, now=now)
    assert not webhook.verify_signature("s3cret", body, "1767600001", sig, now=now)
    assert not webhook.verify_signature("s3cret", body, "1767600000", sig, now=now + 301)
    assert not webhook.verify_signature("s3cret", body, None, sig, now=now)
    assert not webhook.verify_signature("s3cret", body, "1767600000", None, now=now)
    assert not webhook.verify_signature("s3cret", body, "-1", sig, now=now)
    assert not webhook.verify_signature("s3cret", body, "1767600000", "sha256=zz", now=now)


def test_settings_are_checked_at_start() -> None:
    with pytest.raises(ValueError, match="secret"):
        webhook.create(webhook.Config(urls=["https://x.example"], secret=""))
    with pytest.raises(ValueError, match="http"):
        webhook.create(webhook.Config(urls=["ftp://x.example"], secret="s"))


# --- through the job worker -------------------------------------------------------------------


@pytest.mark.db
async def test_notification_is_posted_signed_with_a_delivery_id(
    helpdesk_factory: HelpdeskFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with HttpReceiver() as receiver:
        app = await helpdesk_factory(
            env={"TC_WEBHOOK_SECRET": SECRET},
            plugins={"notifiers": ["webhook"]},
            plugin={
                "notifiers": {
                    "webhook": {
                        "urls": [receiver.url("/ops/hook")],
                        "secret": {"env": "TC_WEBHOOK_SECRET"},
                    }
                }
            },
        )
        n = note()
        with caplog.at_level(logging.INFO, logger="ticketcore.notifiers.webhook"):
            await send_notification(app, n)

    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/ops/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-ticketcore-delivery"] == "sla_warning:1"
    assert request.headers["x-ticketcore-kind"] == "sla_warning"
    assert abs(int(request.headers["x-ticketcore-timestamp"]) - time.time()) < 60
    assert webhook.verify_signature(
        SECRET,
        request.body,
        request.headers["x-ticketcore-timestamp"],
        request.headers["x-ticketcore-signature"],
    )
    assert msgspec.json.decode(request.body, type=Notification) == n
    (job,) = await notify_jobs(app)
    assert (job["status"], job["payload"]["done"]) == ("done", ["notifiers.webhook"])

    (attempt,) = webhook_plugin(app).poster.attempts
    assert (attempt.delivery, attempt.status, attempt.error) == ("sla_warning:1", 200, None)
    assert attempt.url == f"http://127.0.0.1:{receiver.port}/…"
    assert attempt.duration_ms >= 0
    assert "delivered sla_warning:1" in caplog.text and SECRET not in caplog.text


@pytest.mark.db
async def test_failing_receiver_is_retried_with_backoff_without_repeating_chat(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    """Two notifiers at once: the webhook's receiver fails twice, chat is healthy. Chat gets
    the notification exactly once; the webhook gets it on the third attempt, after backoff."""
    async with (
        HttpReceiver(fail_first=2, fail_status=503) as hooks,
        HttpReceiver() as chat,
    ):
        app = await helpdesk_factory(
            plugins={"notifiers": ["webhook", "chat"]},
            plugin={
                "notifiers": {
                    "webhook": {"urls": [hooks.url()], "secret": SECRET},
                    "chat": {"webhook_urls": [chat.url("/services/T0/B0/XYZ")]},
                }
            },
        )
        n = note()
        await send_notification(app, n)

        assert len(chat.requests) == 1 and len(hooks.requests) == 1
        (job,) = await notify_jobs(app)
        assert (job["status"], job["payload"]["done"]) == ("pending", ["notifiers.chat"])
        assert "notifiers.webhook: DeliveryFailed" in job["last_error"]
        assert "HTTP 503" in job["last_error"]

        await app.jobs.drain()  # not due yet: backoff
        assert len(hooks.requests) == 1

        clock.advance(seconds=2)  # first backoff: 2 s
        await app.jobs.drain()
        assert len(hooks.requests) == 2
        clock.advance(seconds=4)  # second backoff: 4 s
        await app.jobs.drain()

    assert [r.status for r in hooks.requests] == [503, 503, 200]
    assert {r.headers["x-ticketcore-delivery"] for r in hooks.requests} == {"sla_warning:1"}
    assert all(
        webhook.verify_signature(
            SECRET, r.body, r.headers["x-ticketcore-timestamp"], r.headers["x-ticketcore-signature"]
        )
        for r in hooks.requests
    )
    assert len(chat.requests) == 1, "the healthy notifier is not called again"
    (job,) = await notify_jobs(app)
    assert (job["status"], job["attempts"]) == ("done", 3)
    assert job["payload"]["done"] == ["notifiers.chat", "notifiers.webhook"]
    log = list(webhook_plugin(app).poster.attempts)
    assert [(a.status, a.error is None) for a in log] == [(503, False), (503, False), (200, True)]
    assert log[0].error is not None and log[0].error.startswith("HTTP 503")


@pytest.mark.db
async def test_a_url_that_acknowledged_is_not_posted_again_when_another_fails(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    async with HttpReceiver() as good, HttpReceiver(fail_first=1) as flaky:
        app = await helpdesk_factory(
            extra_plugins=[
                (
                    "notifiers.webhook",
                    webhook.create(webhook.Config(urls=[good.url(), flaky.url()], secret=SECRET)),
                )
            ]
        )
        await send_notification(app, note())
        (job,) = await notify_jobs(app)
        assert job["status"] == "pending"
        assert (
            f"1 of 2 URL(s) failed: http://127.0.0.1:{flaky.port}/…: HTTP 500" in job["last_error"]
        )
        clock.advance(minutes=1)
        await app.jobs.drain()

    assert len(good.requests) == 1
    assert [r.status for r in flaky.requests] == [500, 200]
    (job,) = await notify_jobs(app)
    assert job["status"] == "done"


@pytest.mark.db
async def test_unreachable_receiver_fails_then_delivers_once_it_is_back(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    async with HttpReceiver() as receiver:
        port = receiver.port
    # nothing listens on the port any more: connection refused
    app = await helpdesk_factory(
        plugins={"notifiers": ["webhook"]},
        plugin={"notifiers": {"webhook": {"urls": [receiver.url()], "secret": SECRET}}},
    )
    await send_notification(app, note())
    (job,) = await notify_jobs(app)
    assert job["status"] == "pending"
    assert "ConnectError" in job["last_error"]
    (attempt,) = webhook_plugin(app).poster.attempts
    assert attempt.status is None and attempt.error is not None

    async with HttpReceiver(port=port) as back:
        clock.advance(minutes=1)
        await app.jobs.drain()
    assert len(back.requests) == 1
    (job,) = await notify_jobs(app)
    assert job["status"] == "done"


@pytest.mark.db
async def test_kinds_filter_sends_only_the_listed_kinds(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    async with HttpReceiver() as receiver:
        app = await helpdesk_factory(
            plugins={"notifiers": ["webhook"]},
            plugin={
                "notifiers": {
                    "webhook": {
                        "urls": [receiver.url()],
                        "secret": SECRET,
                        "kinds": ["sla_breach"],
                    }
                }
            },
        )
        await send_notification(app, note("sla_warning", key="w:1"))
        await send_notification(app, note("sla_breach", key="b:1"))

    assert [r.headers["x-ticketcore-kind"] for r in receiver.requests] == ["sla_breach"]
    assert [j["status"] for j in await notify_jobs(app)] == ["done", "done"]


@pytest.mark.db
async def test_secret_is_redacted_in_the_plugins_api(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(
        env={"TC_WEBHOOK_SECRET": SECRET},
        plugins={"notifiers": ["webhook"]},
        plugin={
            "notifiers": {
                "webhook": {
                    "urls": ["https://ops.example/hook"],
                    "secret": {"env": "TC_WEBHOOK_SECRET"},
                    "timeout_seconds": 2,
                }
            }
        },
    )
    seed = await seed_helpdesk(app)
    async with api_client(app) as client:
        response = await client.get("/api/v1/plugins", headers=seed.headers("admin"))

    assert response.status_code == 200, response.text
    (shown,) = response.json()
    assert (shown["kind"], shown["name"]) == ("notifiers", "webhook")
    assert shown["config"] == {
        "urls": ["https://ops.example/hook"],
        "secret": REDACTED,
        "timeout_seconds": 2,
    }
    assert "notify" in shown["hooks"] and "startup" in shown["hooks"]
    assert SECRET not in response.text

"""The HTTP notifiers' delivery log: every attempt to a real HTTP receiver is stored and
queryable by admins, across restarts, without leaking the endpoint's path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ticketcore import Notification
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.plugins.notifiers.testing import HttpReceiver, send_notification
from ticketcore.testing import api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]


@pytest.fixture(autouse=True)
def fresh_entry_point_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stevedore's entry-point cache in a folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def breach(key: str) -> Notification:
    return Notification(
        kind="sla_breach",
        ticket_id=7,
        recipients=["lead@example.org"],
        subject="Server outage",
        body="Overdue.",
        idempotency_key=key,
    )


@pytest.mark.db
async def test_every_webhook_attempt_is_in_the_delivery_log(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    async with HttpReceiver(fail_first=1, fail_status=503) as receiver:
        config = {
            "plugins": {"notifiers": ["webhook", "chat"]},
            "plugin": {
                "notifiers": {
                    "webhook": {"urls": [receiver.url("/hooks/secret-path")], "secret": "s"},
                    "chat": {"webhook_urls": [receiver.url("/services/T0/B0/token")]},
                }
            },
        }
        app = await helpdesk_factory(**config)
        seed = await seed_helpdesk(app)
        await send_notification(app, breach("sla:7:resolution:breach"))
        clock.advance(seconds=30)  # past the retry's backoff
        await app.jobs.drain()
        assert len(receiver.requests) == 3  # webhook failed once, then both succeeded

        async with api_client(app) as api:
            url = "/api/v1/notification-deliveries"
            denied = await api.get(url, headers=seed.headers("agent"))
            assert denied.status_code == 403
            page = await api.get(url, params={"notifier": "webhook"}, headers=seed.headers("admin"))
            assert page.status_code == 200, page.text
            rows = page.json()["items"]
            assert [(r["status"], r["error"] is None) for r in rows] == [(200, True), (503, False)]
            assert {r["delivery"] for r in rows} == {"sla:7:resolution:breach"}
            assert {(r["kind"], r["ticket_id"]) for r in rows} == {("sla_breach", 7)}
            assert rows[1]["error"].startswith("HTTP 503")
            assert all(r["target"] == f"http://127.0.0.1:{receiver.port}/…" for r in rows)
            failed = await api.get(url, params={"failed_only": True}, headers=seed.headers("admin"))
            assert [r["notifier"] for r in failed.json()["items"]] == ["webhook"]
            chat = await api.get(url, params={"notifier": "chat"}, headers=seed.headers("admin"))
            assert [r["status"] for r in chat.json()["items"]] == [200]
            first = await api.get(url, params={"limit": 2}, headers=seed.headers("admin"))
            cursor = first.json()["next_cursor"]
            rest = await api.get(url, params={"cursor": cursor}, headers=seed.headers("admin"))
            assert len(first.json()["items"]) + len(rest.json()["items"]) == 3

        # Secret paths never reach the log.
        stored = await app.db.fetch("SELECT target, error FROM notification_delivery")
        assert not any("secret-path" in str(r) or "token" in str(r) for r in stored)

        # Another process (a restart) reads the same log.
        await app.stop()
        again = await helpdesk_factory(**config)
        page2 = await again.delivery_log.list(seed.admin, ticket_id=7)
        assert len(page2.items) == 3

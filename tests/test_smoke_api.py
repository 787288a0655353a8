"""A first walk through the API on both engines: create, read, reply, transition."""

from __future__ import annotations

import httpx

from ticketcore.testing import Seed


async def test_create_read_reply_resolve(api: httpx.AsyncClient, seed: Seed) -> None:
    created = await api.post(
        "/api/v1/tickets",
        headers=seed.headers("agent"),
        json={
            "subject": "Printer on fire",
            "body": "Smoke everywhere",
            "requester": {"email": "carol@customer.test"},
            "priority": "high",
        },
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["status"] == "new" and ticket["priority"] == "high"
    assert created.headers["etag"] == '"1"'

    reply = await api.post(
        f"/api/v1/tickets/{ticket['id']}/messages",
        headers=seed.headers("agent"),
        json={"body": "On our way"},
    )
    assert reply.status_code == 201, reply.text
    after = (await api.get(f"/api/v1/tickets/{ticket['id']}", headers=seed.headers("agent"))).json()
    assert after["status"] == "open" and after["first_response_at"] is not None

    resolved = await api.post(
        f"/api/v1/tickets/{ticket['id']}/transitions",
        headers=seed.headers("customer"),
        json={"transition": "resolve"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"

"""Optimistic concurrency under real concurrency, on both engines.

Two clients PATCH the same ticket with the same version at the same time: exactly one
wins, the other gets 409 naming the current version, and the history records one update.
The same holds across two helpdesk instances (separate connection pools, as two processes
would have) sharing one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ticketcore.app import App
from ticketcore.db.migrations import MIGRATIONS
from ticketcore.testing import Seed, api_client, seed_helpdesk

TICKETS = "/api/v1/tickets"
PRIORITIES = ("low", "normal", "high", "critical")


async def create_ticket(api: httpx.AsyncClient, seed: Seed) -> dict[str, Any]:
    """A fresh ticket for Carol, created by the agent."""
    response = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={"subject": "Contended", "requester": {"email": "carol@customer.test"}},
    )
    assert response.status_code == 201, response.text
    return response.json()


def winner_and_loser(
    responses: list[httpx.Response],
) -> tuple[httpx.Response, httpx.Response]:
    """Check that exactly one response is 200 and one is a JSON 409; return them."""
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    ok = next(r for r in responses if r.status_code == 200)
    conflict = next(r for r in responses if r.status_code == 409)
    return ok, conflict


async def updated_events(api: httpx.AsyncClient, seed: Seed, ticket_id: int) -> list[Any]:
    """The 'updated' events in a ticket's history."""
    response = await api.get(f"{TICKETS}/{ticket_id}/events", headers=seed.headers("admin"))
    assert response.status_code == 200
    return [e for e in response.json() if e["kind"] == "updated"]


async def race_patches(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    seed: Seed,
    ticket_id: int,
    version: int,
) -> tuple[httpx.Response, httpx.Response]:
    """Send two PATCHes with the same version at once, one per client, each setting a
    priority other than the current one (so neither is a no-op); check the outcome."""
    current = await clients[0].get(f"{TICKETS}/{ticket_id}", headers=seed.headers("agent"))
    assert current.json()["version"] == version
    priorities = [p for p in PRIORITIES if p != current.json()["priority"]][:2]
    responses = await asyncio.gather(
        clients[0].patch(
            f"{TICKETS}/{ticket_id}",
            headers=seed.headers("agent"),
            json={"version": version, "priority": priorities[0]},
        ),
        clients[1].patch(
            f"{TICKETS}/{ticket_id}",
            headers={**seed.headers("agent2"), "If-Match": f'"{version}"'},
            json={"priority": priorities[1]},
        ),
    )
    ok, conflict = winner_and_loser(list(responses))
    body = conflict.json()
    assert body["error"] == "version_conflict"
    assert body["field"] == "version"
    assert body["detail"]["current_version"] == version + 1
    assert ok.json()["version"] == version + 1
    assert ok.headers["etag"] == f'"{version + 1}"'
    return ok, conflict


async def test_concurrent_patches_one_wins_one_conflicts(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    ok, _ = await race_patches((api, api), seed, ticket["id"], 1)
    winner = ok.json()["priority"]
    detail = (await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))).json()
    assert detail["priority"] == winner
    assert detail["version"] == 2
    updates = await updated_events(api, seed, ticket["id"])
    assert len(updates) == 1
    assert updates[0]["changes"] == {"priority": ["normal", winner]}


async def test_repeated_races_each_have_exactly_one_winner(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    for version in range(1, 6):
        await race_patches((api, api), seed, ticket["id"], version)
    assert len(await updated_events(api, seed, ticket["id"])) == 5
    detail = (await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))).json()
    assert detail["version"] == 6


async def test_concurrent_transitions_with_the_same_version(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}/transitions"
    responses = await asyncio.gather(
        api.post(url, headers=seed.headers("agent"), json={"transition": "hold", "version": 1}),
        api.post(url, headers=seed.headers("agent2"), json={"transition": "open", "version": 1}),
    )
    _, conflict = winner_and_loser(list(responses))
    assert conflict.json()["error"] == "version_conflict"
    history = await api.get(f"{TICKETS}/{ticket['id']}/events", headers=seed.headers("admin"))
    assert [e["kind"] for e in history.json()].count("status_changed") == 1


async def test_concurrent_first_replies_record_one_first_response(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}/messages"
    replies = await asyncio.gather(
        api.post(url, headers=seed.headers("agent"), json={"body": "First!"}),
        api.post(url, headers=seed.headers("agent2"), json={"body": "Me too"}),
    )
    assert [r.status_code for r in replies] == [201, 201]
    history = (
        await api.get(f"{TICKETS}/{ticket['id']}/events", headers=seed.headers("admin"))
    ).json()
    kinds = [e["kind"] for e in history]
    assert kinds.count("first_response") == 1
    assert kinds.count("status_changed") == 1
    assert kinds.count("message_added") == 2
    detail = (await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))).json()
    assert detail["status"] == "open"
    assert detail["version"] == 2


async def test_two_helpdesk_instances_on_one_database(
    helpdesk_factory: Callable[..., Awaitable[App]],
) -> None:
    """Two App instances (separate pools, like two processes): the version check holds
    across them. Both start (migrations are idempotent and locked)."""
    first, second = await asyncio.gather(helpdesk_factory(), helpdesk_factory())
    seed = await seed_helpdesk(first)
    async with api_client(first) as one, api_client(second) as two:
        ticket = await create_ticket(one, seed)
        seen = await two.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent2"))
        assert seen.status_code == 200
        for version in range(1, 4):
            await race_patches((one, two), seed, ticket["id"], version)
        assert len(await updated_events(one, seed, ticket["id"])) == 3
        assert len(await updated_events(two, seed, ticket["id"])) == 3
        # Each migration applied once, not once per instance.
        applied = await first.db.fetchval("SELECT COUNT(*) AS n FROM schema_version")
        assert applied == len(MIGRATIONS)


async def test_a_burst_of_creations_writes_each_ticket_once(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    """Many tickets created at once (they may share a transaction): every valid one is
    written exactly once with its entry and history, an invalid one fails alone, and a
    requester e-mail new to the helpdesk becomes exactly one contact."""
    bodies: list[dict[str, Any]] = []
    for i in range(20):
        body: dict[str, Any] = {"subject": f"Burst {i}", "body": f"text {i}", "tags": [f"b{i}"]}
        body["requester"] = {"email": "burst@example.org" if i % 4 == 0 else f"p{i}@example.org"}
        if i in (7, 13):
            body["assignee_id"] = seed.customer.id  # not an agent: refused
        bodies.append(body)
    responses = await asyncio.gather(
        *(api.post(TICKETS, headers=seed.headers("agent"), json=b) for b in bodies)
    )
    for i, response in enumerate(responses):
        assert response.status_code == (422 if i in (7, 13) else 201), (i, response.text)
    created = {r.json()["subject"]: r.json() for r in responses if r.status_code == 201}
    assert len(created) == 18
    assert len({t["id"] for t in created.values()}) == 18
    assert await helpdesk.db.fetchval("SELECT COUNT(*) AS n FROM ticket") == 18
    assert await helpdesk.db.fetchval("SELECT COUNT(*) AS n FROM entry") == 18
    assert (
        await helpdesk.db.fetchval(
            "SELECT COUNT(*) AS n FROM contact WHERE email = {}", "burst@example.org"
        )
        == 1
    )
    burst = {t["requester"]["id"] for s, t in created.items() if int(s.split()[1]) % 4 == 0}
    assert len(burst) == 1
    for subject, ticket in created.items():
        i = int(subject.split()[1])
        detail = await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))
        assert detail.status_code == 200
        assert (detail.json()["subject"], detail.json()["tags"]) == (subject, [f"b{i}"])
        assert detail.json()["description"] == f"text {i}"
        entries = (
            await api.get(f"{TICKETS}/{ticket['id']}/entries", headers=seed.headers("agent"))
        ).json()
        assert [e["body_text"] for e in entries] == [f"text {i}"]
        events = (
            await api.get(f"{TICKETS}/{ticket['id']}/events", headers=seed.headers("agent"))
        ).json()
        assert [e["kind"] for e in events] == ["created"]
        assert events[0]["data"]["subject"] == subject
        tagged = await api.get(TICKETS, headers=seed.headers("agent"), params={"tag": f"b{i}"})
        assert [t["id"] for t in tagged.json()["items"]] == [ticket["id"]]

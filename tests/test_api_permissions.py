"""Who may see and do what through the API (admin, agent, customer), on both engines.

A customer sees only their own tickets and never an internal note, cannot read the history
or change tickets, and may only close, reopen or resolve; directory administration is for
admins; a revoked token stops working at once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ticketcore.app import App
from ticketcore.testing import Seed

TICKETS = "/api/v1/tickets"
SECRET_NOTE = "Internal: customer is on the fraud watch list zq7x"


async def ticket_for(api: httpx.AsyncClient, seed: Seed, email: str, subject: str) -> int:
    """Create a ticket (by the agent) for the contact with this e-mail; return its id."""
    response = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={"subject": subject, "body": f"{subject} body", "requester": {"email": email}},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def carol_and_dave(api: httpx.AsyncClient, seed: Seed) -> tuple[int, int]:
    """One ticket for each customer."""
    carol = await ticket_for(api, seed, "carol@customer.test", "Carol's problem")
    dave = await ticket_for(api, seed, "dave@customer.test", "Dave's problem")
    return carol, dave


async def test_customer_lists_only_their_own_tickets(api: httpx.AsyncClient, seed: Seed) -> None:
    carol, dave = await carol_and_dave(api, seed)
    carol2 = await ticket_for(api, seed, "carol@customer.test", "Carol again")

    async def ids(who: str, **params: Any) -> list[int]:
        """Ids of the first page of the list as ``who`` sees it."""
        response = await api.get(TICKETS, headers=seed.headers(who), params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids("customer") == [carol2, carol]
    assert await ids("other_customer") == [dave]
    assert await ids("agent") == [carol2, dave, carol]
    assert await ids("admin") == [carol2, dave, carol]
    # Filtering on someone else's requester id yields nothing, not their tickets.
    assert await ids("customer", requester_id=seed.other_customer.contact_id) == []
    assert await ids("customer", q="Dave") == []
    # Pagination does not leak either.
    first = (await api.get(TICKETS, headers=seed.headers("customer"), params={"limit": 1})).json()
    rest = (
        await api.get(
            TICKETS,
            headers=seed.headers("customer"),
            params={"limit": 1, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == [carol2, carol]
    assert rest["next_cursor"] is None


async def test_another_customers_ticket_is_404_everywhere(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    _, dave = await carol_and_dave(api, seed)
    headers = seed.headers("customer")
    url = f"{TICKETS}/{dave}"
    for response in (
        await api.get(url, headers=headers),
        await api.get(f"{url}/entries", headers=headers),
        await api.get(f"{url}/events", headers=headers),
        await api.post(f"{url}/messages", headers=headers, json={"body": "hi"}),
        await api.post(f"{url}/transitions", headers=headers, json={"transition": "close"}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
    # Same answer as for a ticket that does not exist: the customer learns nothing.
    missing = await api.get(f"{TICKETS}/99999", headers=headers)
    assert missing.status_code == 404
    assert (await api.get(url, headers=seed.headers("agent"))).json()["status"] == "new"


async def test_customer_never_sees_an_internal_note(api: httpx.AsyncClient, seed: Seed) -> None:
    carol, _ = await carol_and_dave(api, seed)
    url = f"{TICKETS}/{carol}"
    note = await api.post(f"{url}/notes", headers=seed.headers("agent"), json={"body": SECRET_NOTE})
    assert note.status_code == 201
    reply = await api.post(
        f"{url}/messages", headers=seed.headers("agent"), json={"body": "We are looking into it"}
    )
    assert reply.status_code == 201

    staff_entries = (await api.get(f"{url}/entries", headers=seed.headers("agent"))).json()
    assert [e["kind"] for e in staff_entries] == ["message_in", "note", "message_out"]
    customer_entries = await api.get(f"{url}/entries", headers=seed.headers("customer"))
    assert customer_entries.status_code == 200
    assert [e["kind"] for e in customer_entries.json()] == ["message_in", "message_out"]

    # The note's text is in no response the customer can get.
    headers = seed.headers("customer")
    visible = [
        await api.get(TICKETS, headers=headers),
        await api.get(url, headers=headers),
        await api.get(f"{url}/entries", headers=headers),
        await api.get(f"{url}/events", headers=headers),
        await api.get("/api/v1/me", headers=headers),
        await api.post(f"{url}/messages", headers=headers, json={"body": "thanks"}),
        await api.post(f"{url}/transitions", headers=headers, json={"transition": "resolve"}),
        await api.post(f"{url}/notes", headers=headers, json={"body": "sneaky"}),
    ]
    for response in visible:
        assert SECRET_NOTE not in response.text
        assert "zq7x" not in response.text
    assert "zq7x" in json.dumps(staff_entries)


async def test_customer_cannot_read_history_patch_or_write_notes(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    carol, _ = await carol_and_dave(api, seed)
    url = f"{TICKETS}/{carol}"
    headers = seed.headers("customer")
    history = await api.get(f"{url}/events", headers=headers)
    assert history.status_code == 403
    assert history.json()["error"] == "forbidden"
    patch = await api.patch(url, headers=headers, json={"version": 1, "priority": "critical"})
    assert patch.status_code == 403
    patch_if_match = await api.patch(
        url, headers={**headers, "If-Match": '"1"'}, json={"subject": "Mine now"}
    )
    assert patch_if_match.status_code == 403
    note = await api.post(f"{url}/notes", headers=headers, json={"body": "internal?"})
    assert note.status_code == 403
    link = await api.post(
        f"{url}/links", headers=headers, json={"kind": "related", "ticket_id": carol}
    )
    assert link.status_code == 403
    detail = (await api.get(url, headers=seed.headers("agent"))).json()
    assert (detail["version"], detail["priority"], detail["subject"]) == (
        1,
        "normal",
        "Carol's problem",
    )
    assert await helpdesk.db.fetchval("SELECT COUNT(*) AS n FROM entry WHERE kind = 'note'") == 0


async def test_customer_may_only_close_reopen_and_resolve(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    carol, _ = await carol_and_dave(api, seed)
    url = f"{TICKETS}/{carol}/transitions"
    headers = seed.headers("customer")
    for name in ("open", "hold", "wait_for_customer"):
        refused = await api.post(url, headers=headers, json={"transition": name})
        assert refused.status_code == 403, name
        assert refused.json()["field"] == "transition"
    for name, status in (("resolve", "resolved"), ("reopen", "open"), ("close", "closed")):
        done = await api.post(url, headers=headers, json={"transition": name})
        assert done.status_code == 200, (name, done.text)
        assert done.json()["status"] == status
    history = (await api.get(f"{TICKETS}/{carol}/events", headers=seed.headers("agent"))).json()
    moves = [e for e in history if e["kind"] == "status_changed"]
    assert [e["data"]["transition"] for e in moves] == ["resolve", "reopen", "close"]
    assert {e["actor"]["id"] for e in moves} == {seed.customer.id}


async def test_staff_see_and_change_every_ticket(api: httpx.AsyncClient, seed: Seed) -> None:
    carol, dave = await carol_and_dave(api, seed)
    for who in ("agent", "agent2", "admin"):
        for ticket_id in (carol, dave):
            assert (
                await api.get(f"{TICKETS}/{ticket_id}", headers=seed.headers(who))
            ).status_code == 200
            assert (
                await api.get(f"{TICKETS}/{ticket_id}/events", headers=seed.headers(who))
            ).status_code == 200
    patched = await api.patch(
        f"{TICKETS}/{dave}", headers=seed.headers("agent2"), json={"version": 1, "category": "x"}
    )
    assert patched.status_code == 200
    held = await api.post(
        f"{TICKETS}/{dave}/transitions", headers=seed.headers("admin"), json={"transition": "hold"}
    )
    assert held.status_code == 200


async def test_plugins_endpoint_is_staff_only(api: httpx.AsyncClient, seed: Seed) -> None:
    for who in ("customer", "other_customer"):
        response = await api.get("/api/v1/plugins", headers=seed.headers(who))
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert (await api.get("/api/v1/teams", headers=seed.headers(who))).status_code == 403
    for who in ("agent", "admin"):
        response = await api.get("/api/v1/plugins", headers=seed.headers(who))
        assert response.status_code == 200
        assert response.json() == []
        teams = (await api.get("/api/v1/teams", headers=seed.headers(who))).json()
        assert teams[0]["slug"] == "support"
        assert sorted(teams[0]["member_ids"]) == sorted([seed.agent.id, seed.agent2.id])


async def test_creating_users_and_teams_is_for_admins(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    user = {"email": "new.agent@example.org", "name": "New Agent", "role": "agent"}
    team = {"name": "Billing", "slug": "billing"}
    for who in ("agent", "agent2", "customer"):
        denied_user = await api.post("/api/v1/users", headers=seed.headers(who), json=user)
        assert denied_user.status_code == 403, who
        denied_team = await api.post("/api/v1/teams", headers=seed.headers(who), json=team)
        assert denied_team.status_code == 403, who
    assert (
        await helpdesk.db.fetchval(
            "SELECT COUNT(*) AS n FROM app_user WHERE email = {}", user["email"]
        )
        == 0
    )
    assert await helpdesk.db.fetchval("SELECT COUNT(*) AS n FROM team") == 1

    made_team = await api.post("/api/v1/teams", headers=seed.headers("admin"), json=team)
    assert made_team.status_code == 201, made_team.text
    made_user = await api.post(
        "/api/v1/users",
        headers=seed.headers("admin"),
        json={**user, "team_ids": [made_team.json()["id"]]},
    )
    assert made_user.status_code == 201, made_user.text
    assert made_user.json()["role"] == "agent"
    assert "password" not in made_user.text
    duplicate = await api.post("/api/v1/users", headers=seed.headers("admin"), json=user)
    assert duplicate.status_code == 422
    assert duplicate.json()["field"] == "email"


async def test_revoked_token_is_401_at_once(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    token = seed.tokens["agent"]
    headers = seed.headers("agent")
    assert (await api.get(TICKETS, headers=headers)).status_code == 200  # now cached
    await helpdesk.auth.revoke_token(token)
    response = await api.get(TICKETS, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    # Other tokens, including another one of the same user, keep working.
    fresh = await helpdesk.auth.create_token(seed.agent.id, "second")
    assert (await api.get(TICKETS, headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
    assert (await api.get(TICKETS, headers=seed.headers("admin"))).status_code == 200


async def test_deactivated_user_token_stops_working(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    async with helpdesk.db.transaction():
        await helpdesk.db.fetch(
            "UPDATE app_user SET active = {} WHERE id = {}", False, seed.agent2.id
        )
    response = await api.get(TICKETS, headers=seed.headers("agent2"))
    assert response.status_code == 401

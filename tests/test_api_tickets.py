"""The ticket endpoints of the REST API, on both engines: create, list (every filter and
keyset pagination), detail, PATCH, transitions, messages, notes, entries, history, links
and base64 attachments."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ticketcore.app import App
from ticketcore.testing import Seed, api_client, seed_helpdesk

TICKETS = "/api/v1/tickets"


async def create_ticket(
    api: httpx.AsyncClient, seed: Seed, who: str = "agent", **fields: Any
) -> dict[str, Any]:
    """Create a ticket through the API (requester Carol unless given) and return its JSON."""
    body: dict[str, Any] = {"subject": "Printer jammed", "body": "Paper everywhere"}
    if who not in ("customer", "other_customer"):
        body["requester"] = {"email": "carol@customer.test"}
    body.update(fields)
    response = await api.post(TICKETS, headers=seed.headers(who), json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def list_ids(
    api: httpx.AsyncClient, seed: Seed, who: str = "agent", **params: Any
) -> list[int]:
    """Ids of the first page (limit 100) of the ticket list with these filters."""
    response = await api.get(TICKETS, headers=seed.headers(who), params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


async def transition(
    api: httpx.AsyncClient, seed: Seed, ticket_id: int, name: str, who: str = "agent"
) -> httpx.Response:
    """POST a lifecycle transition."""
    return await api.post(
        f"{TICKETS}/{ticket_id}/transitions", headers=seed.headers(who), json={"transition": name}
    )


async def events(api: httpx.AsyncClient, seed: Seed, ticket_id: int) -> list[dict[str, Any]]:
    """The history of a ticket, read by the admin."""
    response = await api.get(f"{TICKETS}/{ticket_id}/events", headers=seed.headers("admin"))
    assert response.status_code == 200, response.text
    return response.json()


async def count_rows(app: App) -> dict[str, int]:
    """How many rows the ticket, entry, ticket_event and attachment tables hold."""
    return {
        table: int(await app.db.fetchval(f"SELECT COUNT(*) AS n FROM {table}"))
        for table in ("ticket", "entry", "ticket_event", "attachment")
    }


# --- create ---------------------------------------------------------------------------------


async def test_create_returns_201_with_etag_and_stores_the_first_message(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    response = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={
            "subject": "  VPN drops every hour  ",
            "body": "Since Monday",
            "requester": {"email": "carol@customer.test"},
            "priority": "high",
            "category": "network",
            "tags": ["VPN", " vpn ", "Remote"],
            "custom_fields": {"site": "Lyon"},
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"1"'
    ticket = response.json()
    assert ticket["subject"] == "VPN drops every hour"
    assert (ticket["status"], ticket["priority"], ticket["category"]) == ("new", "high", "network")
    assert ticket["tags"] == ["vpn", "remote"]
    assert ticket["custom_fields"] == {"site": "Lyon"}
    assert ticket["version"] == 1
    assert ticket["requester"]["id"] == seed.customer.contact_id

    detail = await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))
    assert detail.status_code == 200
    assert detail.headers["etag"] == '"1"'
    assert detail.json()["description"] == "Since Monday"
    entries = (
        await api.get(f"{TICKETS}/{ticket['id']}/entries", headers=seed.headers("agent"))
    ).json()
    assert [(e["kind"], e["body_text"]) for e in entries] == [("message_in", "Since Monday")]
    assert entries[0]["author"]["kind"] == "contact"
    assert entries[0]["author"]["id"] == seed.customer.contact_id


async def test_requester_is_found_or_created_by_email(api: httpx.AsyncClient, seed: Seed) -> None:
    first = await create_ticket(
        api, seed, requester={"email": "Newcomer@Example.COM", "name": "Nina New"}
    )
    second = await create_ticket(api, seed, requester={"email": "newcomer@example.com"})
    known = await create_ticket(api, seed, requester={"email": "CAROL@customer.test"})

    assert first["requester"]["email"] == "newcomer@example.com"
    assert first["requester"]["name"] == "Nina New"
    assert second["requester"]["id"] == first["requester"]["id"]
    assert known["requester"]["id"] == seed.customer.contact_id
    assert first["requester"]["id"] != seed.customer.contact_id
    by_id = await create_ticket(api, seed, requester={"id": first["requester"]["id"]})
    assert by_id["requester"]["email"] == "newcomer@example.com"


async def test_staff_must_name_a_valid_requester(api: httpx.AsyncClient, seed: Seed) -> None:
    headers = seed.headers("agent")
    missing = await api.post(TICKETS, headers=headers, json={"subject": "Who?"})
    assert missing.status_code == 422
    assert missing.json()["field"] == "requester"
    bad = await api.post(
        TICKETS, headers=headers, json={"subject": "Who?", "requester": {"email": "not-an-email"}}
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "requester.email"
    unknown = await api.post(
        TICKETS, headers=headers, json={"subject": "Who?", "requester": {"id": 99999}}
    )
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "requester.id"


async def test_a_customer_creating_a_ticket_is_its_requester(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    own = await create_ticket(api, seed, "customer")
    assert own["requester"]["id"] == seed.customer.contact_id
    # Naming someone else as requester does not let a customer open tickets in their name.
    spoofed = await create_ticket(api, seed, "customer", requester={"email": "dave@customer.test"})
    assert spoofed["requester"]["id"] == seed.customer.contact_id
    assert await list_ids(api, seed, "other_customer") == []


@pytest.mark.parametrize("field", ["team_id", "assignee_id"])
async def test_a_customer_cannot_choose_team_or_assignee(
    api: httpx.AsyncClient, seed: Seed, field: str
) -> None:
    value = seed.team_id if field == "team_id" else seed.agent.id
    response = await api.post(
        TICKETS, headers=seed.headers("customer"), json={"subject": "Help", field: value}
    )
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert await list_ids(api, seed) == []


async def test_staff_create_checks_team_and_assignee_exist(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ok = await create_ticket(api, seed, team_id=seed.team_id, assignee_id=seed.agent.id)
    assert (ok["team_id"], ok["assignee_id"]) == (seed.team_id, seed.agent.id)
    for field, value in (
        ("team_id", 9999),
        ("assignee_id", 9999),
        ("assignee_id", seed.customer.id),
    ):
        response = await api.post(
            TICKETS,
            headers=seed.headers("agent"),
            json={"subject": "x", "requester": {"email": "carol@customer.test"}, field: value},
        )
        assert response.status_code == 422, (field, value)
        assert response.json()["field"] == field
    assert await list_ids(api, seed) == [ok["id"]]


# --- list -----------------------------------------------------------------------------------


async def test_list_filters(api: httpx.AsyncClient, seed: Seed) -> None:
    plain = await create_ticket(api, seed, subject="Cannot log in")
    urgent = await create_ticket(
        api,
        seed,
        subject="Server DOWN in Lyon",
        priority="critical",
        category="outage",
        tags=["Lyon", "infra"],
        team_id=seed.team_id,
        assignee_id=seed.agent.id,
    )
    other = await create_ticket(
        api,
        seed,
        subject="Discount 50% not applied",
        requester={"email": "dave@customer.test"},
        team_id=seed.team_id,
        tags=["billing"],
    )
    decoy = await create_ticket(
        api, seed, subject="Discount 500 not applied", requester={"email": "eve@example.org"}
    )
    assert (await transition(api, seed, plain["id"], "resolve")).status_code == 200

    all_ids = [decoy["id"], other["id"], urgent["id"], plain["id"]]
    assert await list_ids(api, seed) == all_ids
    assert await list_ids(api, seed, status="resolved") == [plain["id"]]
    assert await list_ids(api, seed, status="new") == [decoy["id"], other["id"], urgent["id"]]
    assert await list_ids(api, seed, priority="critical") == [urgent["id"]]
    assert await list_ids(api, seed, team_id=seed.team_id) == [other["id"], urgent["id"]]
    assert await list_ids(api, seed, assignee_id=seed.agent.id) == [urgent["id"]]
    assert await list_ids(api, seed, assignee_id=seed.agent2.id) == []
    assert await list_ids(api, seed, unassigned="true") == [decoy["id"], other["id"], plain["id"]]
    assert await list_ids(api, seed, requester_id=seed.other_customer.contact_id) == [other["id"]]
    assert await list_ids(api, seed, requester_id=seed.customer.contact_id) == [
        urgent["id"],
        plain["id"],
    ]
    assert await list_ids(api, seed, category="outage") == [urgent["id"]]
    assert await list_ids(api, seed, tag="LYON") == [urgent["id"]]
    assert await list_ids(api, seed, tag="billing") == [other["id"]]
    assert await list_ids(api, seed, tag="nothing") == []
    # q matches the subject case-insensitively; LIKE wildcards in q are literal characters.
    assert await list_ids(api, seed, q="server down") == [urgent["id"]]
    assert await list_ids(api, seed, q="50%") == [other["id"]]
    assert await list_ids(api, seed, q="discount") == [decoy["id"], other["id"]]
    assert await list_ids(api, seed, q="log_in") == []
    # Filters combine with AND.
    assert await list_ids(api, seed, team_id=seed.team_id, unassigned="true") == [other["id"]]
    assert await list_ids(api, seed, status="new", tag="lyon", priority="normal") == []


async def test_list_rejects_an_unknown_status(api: httpx.AsyncClient, seed: Seed) -> None:
    response = await api.get(TICKETS, headers=seed.headers("agent"), params={"status": "asleep"})
    assert response.status_code == 422
    assert response.json()["field"] == "status"


async def test_keyset_pagination_has_no_duplicates_or_gaps(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    created = [(await create_ticket(api, seed, subject=f"Ticket {i}"))["id"] for i in range(7)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await api.get(TICKETS, headers=seed.headers("agent"), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 3
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(created, reverse=True)

    # A ticket created between two page reads appears on no later page and breaks nothing.
    first = (await api.get(TICKETS, headers=seed.headers("agent"), params={"limit": 4})).json()
    await create_ticket(api, seed, subject="Late arrival")
    rest = (
        await api.get(
            TICKETS,
            headers=seed.headers("agent"),
            params={"limit": 4, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == sorted(created, reverse=True)
    assert rest["next_cursor"] is None


async def test_pagination_with_a_filter(api: httpx.AsyncClient, seed: Seed) -> None:
    tagged = []
    for i in range(5):
        ticket = await create_ticket(api, seed, subject=f"T{i}", tags=["odd"] if i % 2 else [])
        if i % 2:
            tagged.append(ticket["id"])
    page = (
        await api.get(TICKETS, headers=seed.headers("agent"), params={"tag": "odd", "limit": 1})
    ).json()
    second = (
        await api.get(
            TICKETS,
            headers=seed.headers("agent"),
            params={"tag": "odd", "limit": 1, "cursor": page["next_cursor"]},
        )
    ).json()
    assert [t["id"] for t in page["items"] + second["items"]] == sorted(tagged, reverse=True)
    assert second["next_cursor"] is None


async def test_invalid_cursor_is_422_on_cursor(api: httpx.AsyncClient, seed: Seed) -> None:
    for cursor in (
        "!!!",
        "garbage",
        base64.urlsafe_b64encode(b"t:abc").decode(),
        base64.urlsafe_b64encode(b"x:5").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ):
        response = await api.get(TICKETS, headers=seed.headers("agent"), params={"cursor": cursor})
        assert response.status_code == 422, cursor
        body = response.json()
        assert body["error"] == "validation_failed"
        assert body["field"] == "cursor"
        assert "cursor" in body["message"]


async def test_limit_out_of_range_is_a_json_client_error(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    for limit in ("0", "101", "-1", "many"):
        response = await api.get(TICKETS, headers=seed.headers("agent"), params={"limit": limit})
        assert 400 <= response.status_code < 500, limit
        body = response.json()
        assert body["field"] == "limit"
        assert body["error"] and body["message"]
    assert (
        await api.get(TICKETS, headers=seed.headers("agent"), params={"limit": 100})
    ).status_code == 200


# --- PATCH ----------------------------------------------------------------------------------


async def test_patch_with_version_in_body_and_with_if_match(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}"
    first = await api.patch(
        url, headers=seed.headers("agent"), json={"version": 1, "priority": "high"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["priority"] == "high"
    assert first.json()["version"] == 2
    assert first.headers["etag"] == '"2"'

    etag = (await api.get(url, headers=seed.headers("agent"))).headers["etag"]
    second = await api.patch(
        url,
        headers={**seed.headers("agent"), "If-Match": etag},
        json={"subject": "Renamed", "team_id": seed.team_id, "assignee_id": seed.agent2.id},
    )
    assert second.status_code == 200, second.text
    body = second.json()
    assert (body["subject"], body["team_id"], body["assignee_id"]) == (
        "Renamed",
        seed.team_id,
        seed.agent2.id,
    )
    assert second.headers["etag"] == '"3"'

    weak = await api.patch(
        url, headers={**seed.headers("agent"), "If-Match": 'W/"3"'}, json={"category": "hw"}
    )
    assert weak.status_code == 200, weak.text
    assert weak.json()["version"] == 4

    # The stale version from the body is refused: nothing changes.
    stale = await api.patch(
        url, headers=seed.headers("agent"), json={"version": 1, "priority": "low"}
    )
    assert stale.status_code == 409
    assert stale.json()["detail"]["current_version"] == 4
    assert (await api.get(url, headers=seed.headers("agent"))).json()["priority"] == "high"


async def test_patch_needs_a_version(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}"
    missing = await api.patch(url, headers=seed.headers("agent"), json={"priority": "low"})
    assert missing.status_code == 422
    assert missing.json()["field"] == "version"
    bad = await api.patch(
        url, headers={**seed.headers("agent"), "If-Match": "yesterday"}, json={"priority": "low"}
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "If-Match"
    assert (await api.get(url, headers=seed.headers("agent"))).json()["version"] == 1


async def test_patch_without_a_change_keeps_the_version(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed, priority="high")
    same = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "priority": "high"},
    )
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert [e["kind"] for e in await events(api, seed, ticket["id"])] == ["created"]


async def test_patch_tags_is_reflected_in_the_tag_filter(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed, tags=["old", "shared"])
    assert await list_ids(api, seed, tag="old") == [ticket["id"]]
    response = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "tags": ["NEW", "shared"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["new", "shared"]
    assert await list_ids(api, seed, tag="old") == []
    assert await list_ids(api, seed, tag="new") == [ticket["id"]]
    assert await list_ids(api, seed, tag="shared") == [ticket["id"]]
    cleared = await api.patch(
        f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"), json={"version": 2, "tags": []}
    )
    assert cleared.json()["tags"] == []
    assert await list_ids(api, seed, tag="shared") == []


async def test_patch_custom_fields_merges_and_none_removes(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed, custom_fields={"a": 1, "b": 2})
    response = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "custom_fields": {"b": None, "c": 3}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["custom_fields"] == {"a": 1, "c": 3}


async def test_patch_refuses_an_empty_subject_and_unknown_refs(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}"
    for body, field in (
        ({"subject": "  "}, "subject"),
        ({"team_id": 4242}, "team_id"),
        ({"assignee_id": seed.customer.id}, "assignee_id"),
    ):
        response = await api.patch(url, headers=seed.headers("agent"), json={"version": 1, **body})
        assert response.status_code == 422, body
        assert response.json()["field"] == field
    assert (await api.get(url, headers=seed.headers("agent"))).json()["version"] == 1


# --- transitions ----------------------------------------------------------------------------


async def test_valid_transitions_set_timestamps(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    tid = ticket["id"]
    held = await transition(api, seed, tid, "hold")
    assert held.status_code == 200, held.text
    assert held.json()["status"] == "on_hold"
    assert held.headers["etag"] == '"2"'
    resolved = (await transition(api, seed, tid, "resolve")).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    closed = (await transition(api, seed, tid, "close")).json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    reopened = (await transition(api, seed, tid, "reopen")).json()
    assert reopened["status"] == "open"
    assert reopened["resolved_at"] is None and reopened["closed_at"] is None
    history = [e for e in await events(api, seed, tid) if e["kind"] == "status_changed"]
    assert [e["data"]["transition"] for e in history] == ["hold", "resolve", "close", "reopen"]
    assert history[0]["changes"]["status"] == ["new", "on_hold"]


async def test_transition_with_a_stale_version_is_refused(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    response = await api.post(
        f"{TICKETS}/{ticket['id']}/transitions",
        headers={**seed.headers("agent"), "If-Match": '"7"'},
        json={"transition": "open"},
    )
    assert response.status_code == 409
    assert response.json()["field"] == "version"
    body_version = await api.post(
        f"{TICKETS}/{ticket['id']}/transitions",
        headers=seed.headers("agent"),
        json={"transition": "open", "version": 1, "comment": "on it"},
    )
    assert body_version.status_code == 200
    last = (await events(api, seed, ticket["id"]))[-1]
    assert last["data"] == {"transition": "open", "comment": "on it"}


async def test_invalid_transition_is_409_with_the_allowed_list(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    response = await transition(api, seed, ticket["id"], "reopen")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "invalid_transition"
    assert body["field"] == "transition"
    assert body["detail"]["status"] == "new"
    assert body["detail"]["allowed"] == ["open", "wait_for_customer", "hold", "resolve", "close"]
    detail = await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))
    assert detail.json()["status"] == "new" and detail.json()["version"] == 1


async def test_unknown_transition_names_the_known_ones(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    response = await transition(api, seed, ticket["id"], "teleport")
    assert response.status_code == 409
    body = response.json()
    assert body["field"] == "transition"
    assert "teleport" in body["message"] and "wait_for_customer" in body["message"]


# --- messages, notes, entries ----------------------------------------------------------------


async def test_agent_reply_records_first_response_and_opens(
    api: httpx.AsyncClient, seed: Seed, clock: Any
) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}"
    clock.advance(minutes=42)
    reply = await api.post(f"{url}/messages", headers=seed.headers("agent"), json={"body": "Hi"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["kind"] == "message_out"
    after = (await api.get(url, headers=seed.headers("agent"))).json()
    assert after["status"] == "open"
    assert after["first_response_at"] == "2026-01-05T09:42:00Z"
    clock.advance(minutes=10)
    await api.post(f"{url}/messages", headers=seed.headers("agent2"), json={"body": "Again"})
    again = (await api.get(url, headers=seed.headers("agent"))).json()
    assert again["first_response_at"] == "2026-01-05T09:42:00Z"
    kinds = [e["kind"] for e in await events(api, seed, ticket["id"])]
    assert kinds.count("first_response") == 1
    assert kinds.count("message_added") == 2


async def test_customer_replies_move_the_status(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    tid = ticket["id"]
    url = f"{TICKETS}/{tid}"

    async def customer_says(text: str) -> httpx.Response:
        """Carol posts a public message."""
        return await api.post(
            f"{url}/messages", headers=seed.headers("customer"), json={"body": text}
        )

    assert (await transition(api, seed, tid, "wait_for_customer")).status_code == 200
    answered = await customer_says("Here are the logs")
    assert answered.status_code == 201, answered.text
    assert answered.json()["kind"] == "message_in"
    assert (await api.get(url, headers=seed.headers("agent"))).json()["status"] == "open"

    assert (await transition(api, seed, tid, "resolve")).status_code == 200
    assert (await customer_says("Still broken")).status_code == 201
    reopened = (await api.get(url, headers=seed.headers("agent"))).json()
    assert reopened["status"] == "open"
    last_status = [e for e in await events(api, seed, tid) if e["kind"] == "status_changed"][-1]
    assert last_status["data"]["transition"] == "reopen"
    assert last_status["changes"]["status"] == ["resolved", "open"]

    assert (await transition(api, seed, tid, "close")).status_code == 200
    before = (await api.get(f"{url}/entries", headers=seed.headers("agent"))).json()
    refused = await customer_says("Hello?")
    assert refused.status_code == 409
    assert refused.json()["error"] == "invalid_transition"
    after = (await api.get(f"{url}/entries", headers=seed.headers("agent"))).json()
    assert after == before


async def test_customer_reply_on_an_open_ticket_keeps_it_open(
    api: httpx.AsyncClient, seed: Seed
) -> None:
    ticket = await create_ticket(api, seed)
    await transition(api, seed, ticket["id"], "hold")
    reply = await api.post(
        f"{TICKETS}/{ticket['id']}/messages",
        headers=seed.headers("customer"),
        json={"body": "Any news?"},
    )
    assert reply.status_code == 201
    detail = await api.get(f"{TICKETS}/{ticket['id']}", headers=seed.headers("agent"))
    assert detail.json()["status"] == "on_hold"


async def test_notes_and_entries(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}"
    note = await api.post(
        f"{url}/notes", headers=seed.headers("agent"), json={"body": "Check the RADIUS logs"}
    )
    assert note.status_code == 201, note.text
    assert note.json()["kind"] == "note"
    assert note.json()["author"]["id"] == seed.agent.id
    html = await api.post(
        f"{url}/messages",
        headers=seed.headers("agent"),
        json={"body_html": "<p>Fixed <script>alert(1)</script><b>now</b></p>"},
    )
    assert html.status_code == 201, html.text
    assert "script" not in html.json()["body_html"]
    assert html.json()["body_text"] == "Fixed now"
    entries = (await api.get(f"{url}/entries", headers=seed.headers("agent"))).json()
    assert [e["kind"] for e in entries] == ["message_in", "note", "message_out"]
    # A note does not change the status and is not a first response.
    detail = (await api.get(url, headers=seed.headers("agent"))).json()
    assert detail["status"] == "open"
    empty = await api.post(f"{url}/notes", headers=seed.headers("agent"), json={"body": "  "})
    assert empty.status_code == 422
    assert empty.json()["field"] == "body"


async def test_entries_of_an_unknown_ticket_is_404(api: httpx.AsyncClient, seed: Seed) -> None:
    for path in ("entries", "events"):
        response = await api.get(f"{TICKETS}/4040/{path}", headers=seed.headers("agent"))
        assert response.status_code == 404
    response = await api.post(
        f"{TICKETS}/4040/messages", headers=seed.headers("agent"), json={"body": "x"}
    )
    assert response.status_code == 404


# --- history --------------------------------------------------------------------------------


async def test_history_records_old_and_new_values_and_the_actor(
    api: httpx.AsyncClient, seed: Seed, clock: Any
) -> None:
    ticket = await create_ticket(api, seed, priority="low", tags=["a"])
    clock.advance(hours=1)
    response = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent2"),
        json={"version": 1, "priority": "high", "tags": ["b"], "team_id": seed.team_id},
    )
    assert response.status_code == 200, response.text
    history = await events(api, seed, ticket["id"])
    assert [e["kind"] for e in history] == ["created", "updated"]
    created, updated = history
    assert created["actor"]["kind"] == "user" and created["actor"]["id"] == seed.agent.id
    assert created["data"]["priority"] == "low"
    assert created["data"]["requester_id"] == seed.customer.contact_id
    assert updated["actor"] == {
        "kind": "user",
        "id": seed.agent2.id,
        "name": "Sam Second",
        "role": updated["actor"]["role"],
    }
    assert updated["changes"] == {
        "priority": ["low", "high"],
        "tags": [["a"], ["b"]],
        "team_id": [None, seed.team_id],
    }
    assert updated["created_at"] == "2026-01-05T10:00:00Z"
    assert updated["ticket_id"] == ticket["id"]


# --- links ----------------------------------------------------------------------------------


async def test_links(api: httpx.AsyncClient, seed: Seed) -> None:
    parent = await create_ticket(api, seed, subject="Parent")
    child = await create_ticket(api, seed, subject="Child")
    dup = await create_ticket(api, seed, subject="Duplicate")
    headers = seed.headers("agent")

    linked = await api.post(
        f"{TICKETS}/{child['id']}/links",
        headers=headers,
        json={"kind": "parent", "ticket_id": parent["id"]},
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["links"] == [{"kind": "parent", "ticket_id": parent["id"]}]
    assert linked.json()["status"] == "new"
    related = await api.post(
        f"{TICKETS}/{child['id']}/links",
        headers=headers,
        json={"kind": "related", "ticket_id": dup["id"]},
    )
    assert [link["kind"] for link in related.json()["links"]] == ["parent", "related"]
    # Linking again is idempotent.
    again = await api.post(
        f"{TICKETS}/{child['id']}/links",
        headers=headers,
        json={"kind": "related", "ticket_id": dup["id"]},
    )
    assert len(again.json()["links"]) == 2

    merged = await api.post(
        f"{TICKETS}/{dup['id']}/links",
        headers=headers,
        json={"kind": "merged_into", "ticket_id": parent["id"]},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["status"] == "closed"
    assert merged.json()["closed_at"] is not None
    history = await events(api, seed, dup["id"])
    assert [e["kind"] for e in history] == ["created", "linked", "status_changed"]
    assert history[1]["data"] == {"kind": "merged_into", "ticket_id": parent["id"]}
    assert history[2]["data"]["cause"] == "merged"
    detail = (await api.get(f"{TICKETS}/{child['id']}", headers=headers)).json()
    assert detail["links"] == [
        {"kind": "parent", "ticket_id": parent["id"]},
        {"kind": "related", "ticket_id": dup["id"]},
    ]


async def test_link_errors(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await create_ticket(api, seed)
    url = f"{TICKETS}/{ticket['id']}/links"
    itself = await api.post(
        url, headers=seed.headers("agent"), json={"kind": "related", "ticket_id": ticket["id"]}
    )
    assert itself.status_code == 422
    assert itself.json()["field"] == "ticket_id"
    missing = await api.post(
        url, headers=seed.headers("agent"), json={"kind": "related", "ticket_id": 9999}
    )
    assert missing.status_code == 404
    bad_kind = await api.post(
        url, headers=seed.headers("agent"), json={"kind": "sibling", "ticket_id": 1}
    )
    assert bad_kind.status_code == 422
    assert bad_kind.json()["field"] == "kind"
    assert [e["kind"] for e in await events(api, seed, ticket["id"])] == ["created"]


# --- attachments ----------------------------------------------------------------------------


async def test_attachments_are_stored_with_size_sha256_and_type(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    data = b"%PDF-1.7 fake invoice"
    ticket = await create_ticket(
        api,
        seed,
        attachments=[
            {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(data).decode(),
            },
            {"filename": "../../etc/passwd", "content_base64": base64.b64encode(b"x").decode()},
        ],
    )
    entries = (
        await api.get(f"{TICKETS}/{ticket['id']}/entries", headers=seed.headers("agent"))
    ).json()
    files = entries[0]["attachments"]
    digest = hashlib.sha256(data).hexdigest()
    assert files[0]["filename"] == "invoice.pdf"
    assert files[0]["content_type"] == "application/pdf"
    assert files[0]["size"] == len(data)
    assert files[0]["sha256"] == digest
    assert "/" not in files[1]["filename"]
    assert files[1]["content_type"] == "application/octet-stream"
    stored = Path(helpdesk.settings.storage_dir) / digest[:2] / digest
    assert stored.read_bytes() == data

    reply = await api.post(
        f"{TICKETS}/{ticket['id']}/messages",
        headers=seed.headers("customer"),
        json={
            "attachments": [
                {
                    "filename": "screenshot.png",
                    "content_type": "image/png",
                    "content_base64": base64.b64encode(b"\x89PNG").decode(),
                }
            ]
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["attachments"][0]["size"] == 4


async def test_bad_base64_is_422_and_writes_nothing(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    before = await count_rows(helpdesk)
    response = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={
            "subject": "With a file",
            "requester": {"email": "carol@customer.test"},
            "attachments": [{"filename": "a.txt", "content_base64": "not base64!"}],
        },
    )
    assert response.status_code == 422
    assert response.json()["field"] == "attachments[0].content_base64"
    assert await count_rows(helpdesk) == before


async def test_oversized_attachment_is_422_and_writes_nothing(
    helpdesk_factory: Callable[..., Awaitable[App]],
) -> None:
    app = await helpdesk_factory(limits={"max_attachment_bytes": 10})
    seed = await seed_helpdesk(app)
    async with api_client(app) as api:
        existing = await create_ticket(api, seed)
        before = await count_rows(app)
        small = base64.b64encode(b"0123456789").decode()
        big = base64.b64encode(b"0123456789X").decode()
        response = await api.post(
            TICKETS,
            headers=seed.headers("agent"),
            json={
                "subject": "Big file",
                "requester": {"email": "carol@customer.test"},
                "attachments": [
                    {"filename": "ok.bin", "content_base64": small},
                    {"filename": "big.bin", "content_base64": big},
                ],
            },
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["field"] == "attachments[1]"
        assert "big.bin" in body["message"] and "10" in body["message"]
        assert await count_rows(app) == before
        storage = Path(app.settings.storage_dir)
        assert not storage.exists() or not any(p.is_file() for p in storage.rglob("*"))

        reply = await api.post(
            f"{TICKETS}/{existing['id']}/messages",
            headers=seed.headers("agent"),
            json={
                "body": "see attached",
                "attachments": [{"filename": "b", "content_base64": big}],
            },
        )
        assert reply.status_code == 422
        assert await count_rows(app) == before
        detail = await api.get(f"{TICKETS}/{existing['id']}", headers=seed.headers("agent"))
        assert detail.json()["status"] == "new" and detail.json()["first_response_at"] is None

        fits = await create_ticket(
            api, seed, attachments=[{"filename": "ok.bin", "content_base64": small}]
        )
        assert fits["id"] > existing["id"]

"""Every API error is JSON with ``error`` and ``message`` (and ``field`` where one applies),
and invalid input never leaves a half-written ticket behind. Runs on both engines."""

from __future__ import annotations

from typing import Any

import httpx

from ticketcore.app import App
from ticketcore.testing import Seed

TICKETS = "/api/v1/tickets"
CAROL = {"email": "carol@customer.test"}


def assert_error(
    response: httpx.Response, status: int, error: str, field: str | None = None
) -> dict[str, Any]:
    """Check the status and the JSON error shape; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body.get("field") == field, body
    return body


async def count_rows(app: App) -> dict[str, int]:
    """Row counts of the tables a ticket command writes."""
    return {
        table: int(await app.db.fetchval(f"SELECT COUNT(*) AS n FROM {table}"))
        for table in ("ticket", "entry", "ticket_event", "ticket_tag", "attachment", "job")
    }


async def new_ticket(api: httpx.AsyncClient, seed: Seed) -> dict[str, Any]:
    """A ticket created by the agent for Carol."""
    response = await api.post(
        TICKETS, headers=seed.headers("agent"), json={"subject": "Base", "requester": CAROL}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_unknown_field_is_named(api: httpx.AsyncClient, seed: Seed) -> None:
    response = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={"subject": "x", "requester": CAROL, "colour": "red"},
    )
    body = assert_error(response, 422, "validation_failed", "colour")
    assert "colour" in body["message"]

    nested = await api.post(
        TICKETS,
        headers=seed.headers("agent"),
        json={"subject": "x", "requester": {"emial": "carol@customer.test"}},
    )
    assert_error(nested, 422, "validation_failed", "requester.emial")

    ticket = await new_ticket(api, seed)
    patch = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "stauts": "open"},
    )
    assert_error(patch, 422, "validation_failed", "stauts")


async def test_wrong_types_are_422_on_the_field(api: httpx.AsyncClient, seed: Seed) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"subject": 5, "requester": CAROL}, "subject"),
        ({"subject": "x", "requester": CAROL, "priority": "urgent"}, "priority"),
        ({"subject": "x", "requester": CAROL, "tags": "a,b"}, "tags"),
        ({"subject": "x", "requester": {"email": 5}}, "requester.email"),
        ({"subject": "x", "requester": CAROL, "team_id": "support"}, "team_id"),
    ]
    for body, field in cases:
        response = await api.post(TICKETS, headers=seed.headers("agent"), json=body)
        assert_error(response, 422, "validation_failed", field)
    not_an_object = await api.post(TICKETS, headers=seed.headers("agent"), json=["subject"])
    assert_error(not_an_object, 422, "validation_failed")
    malformed = await api.post(
        TICKETS,
        headers={**seed.headers("agent"), "content-type": "application/json"},
        content=b'{"subject": ',
    )
    assert 400 <= malformed.status_code < 500
    assert malformed.json()["error"] and malformed.json()["message"]


async def test_missing_and_empty_subject(api: httpx.AsyncClient, seed: Seed) -> None:
    missing = await api.post(TICKETS, headers=seed.headers("agent"), json={"requester": CAROL})
    body = assert_error(missing, 422, "validation_failed", "subject")
    assert "subject" in body["message"]
    empty = await api.post(
        TICKETS, headers=seed.headers("agent"), json={"subject": "", "requester": CAROL}
    )
    assert_error(empty, 422, "validation_failed", "subject")
    blank = await api.post(
        TICKETS, headers=seed.headers("agent"), json={"subject": " \t ", "requester": CAROL}
    )
    assert_error(blank, 422, "validation_failed", "subject")
    too_long = await api.post(
        TICKETS, headers=seed.headers("agent"), json={"subject": "x" * 501, "requester": CAROL}
    )
    assert_error(too_long, 422, "validation_failed", "subject")
    no_transition = await api.post(
        f"{TICKETS}/1/transitions", headers=seed.headers("agent"), json={}
    )
    assert_error(no_transition, 422, "validation_failed", "transition")


async def test_unknown_ticket_is_404(api: httpx.AsyncClient, seed: Seed) -> None:
    headers = seed.headers("agent")
    for response in (
        await api.get(f"{TICKETS}/987654", headers=headers),
        await api.patch(f"{TICKETS}/987654", headers=headers, json={"version": 1, "subject": "x"}),
        await api.post(f"{TICKETS}/987654/notes", headers=headers, json={"body": "x"}),
        await api.post(
            f"{TICKETS}/987654/transitions", headers=headers, json={"transition": "open"}
        ),
        await api.post(
            f"{TICKETS}/987654/links", headers=headers, json={"kind": "related", "ticket_id": 1}
        ),
    ):
        assert_error(response, 404, "not_found", "ticket_id")


async def test_missing_or_bad_token_is_401_json(api: httpx.AsyncClient, seed: Seed) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer tc_not-a-real-token"},
        {"Authorization": seed.headers("agent")["Authorization"] + "x"},
    ):
        for response in (
            await api.get(TICKETS, headers=headers),
            await api.post(TICKETS, headers=headers, json={"subject": "x"}),
            await api.get("/api/v1/me", headers=headers),
        ):
            assert_error(response, 401, "not_authenticated")
    ok = await api.get("/api/v1/me", headers=seed.headers("agent"))
    assert ok.status_code == 200 and ok.json()["id"] == seed.agent.id


async def test_unknown_route_and_method_are_json(api: httpx.AsyncClient, seed: Seed) -> None:
    assert_error(await api.get("/api/v1/nowhere", headers=seed.headers("agent")), 404, "http_error")
    assert_error(await api.get("/nowhere"), 404, "http_error")
    assert_error(
        await api.get(f"{TICKETS}/not-a-number", headers=seed.headers("agent")), 404, "http_error"
    )
    assert_error(await api.delete(TICKETS, headers=seed.headers("agent")), 405, "http_error")


async def test_healthz_answers_without_a_token(api: httpx.AsyncClient, helpdesk: App) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": helpdesk.db.dialect}


async def test_invalid_input_never_leaves_a_half_written_ticket(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    ticket = await new_ticket(api, seed)
    before = await count_rows(helpdesk)
    headers = seed.headers("agent")
    bad_creates: list[dict[str, Any]] = [
        {"subject": "x", "requester": CAROL, "team_id": 999},
        {"subject": "x", "requester": CAROL, "assignee_id": seed.customer.id},
        {"subject": "x", "requester": CAROL, "tags": ["ok", "  "]},
        {"subject": "x", "requester": CAROL, "body": "x" * 1_000_001},
        {"subject": "x", "requester": {"id": 4242}},
        {
            "subject": "x",
            "requester": CAROL,
            "tags": ["fine"],
            "attachments": [{"filename": "f", "content_base64": "@@@"}],
        },
        {"subject": "   ", "requester": CAROL},
        {"subject": "x", "requester": CAROL, "unknown": 1},
    ]
    for body in bad_creates:
        response = await api.post(TICKETS, headers=headers, json=body)
        assert 400 <= response.status_code < 500, body
        assert response.json()["error"] and response.json()["message"]
    url = f"{TICKETS}/{ticket['id']}"
    for method, path, body in (
        ("PATCH", url, {"version": 1, "subject": "ok", "team_id": 999}),
        ("PATCH", url, {"version": 1, "tags": ["a", ""]}),
        ("POST", f"{url}/messages", {"body": ""}),
        ("POST", f"{url}/notes", {"body": "n", "attachments": [{"filename": "f"}]}),
        ("POST", f"{url}/transitions", {"transition": "reopen"}),
        ("POST", f"{url}/links", {"kind": "merged_into", "ticket_id": ticket["id"]}),
        ("POST", f"{url}/links", {"kind": "merged_into", "ticket_id": 5555}),
    ):
        response = await api.request(method, path, headers=headers, json=body)
        assert 400 <= response.status_code < 500, (method, path, body)
        assert response.json()["error"] and response.json()["message"]
    assert await count_rows(helpdesk) == before
    after = (await api.get(url, headers=headers)).json()
    assert (after["version"], after["subject"], after["status"]) == (1, "Base", "new")
    assert after["links"] == []


async def test_error_bodies_carry_detail_where_useful(api: httpx.AsyncClient, seed: Seed) -> None:
    ticket = await new_ticket(api, seed)
    await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "category": "a"},
    )
    conflict = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("agent"),
        json={"version": 1, "category": "b"},
    )
    body = assert_error(conflict, 409, "version_conflict", "version")
    assert body["detail"] == {"current_version": 2}
    forbidden = await api.patch(
        f"{TICKETS}/{ticket['id']}",
        headers=seed.headers("customer"),
        json={"version": 2, "category": "c"},
    )
    assert_error(forbidden, 403, "forbidden")

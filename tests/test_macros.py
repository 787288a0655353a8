"""Macros: a canned reply with placeholders, field changes and a transition in one step,
all or nothing, for staff only (both engines)."""

from __future__ import annotations

import httpx

from ticketcore.app import App
from ticketcore.testing import Seed

TICKETS = "/api/v1/tickets"
MACROS = "/api/v1/macros"


async def _ticket(api: httpx.AsyncClient, seed: Seed) -> dict:
    made = await api.post(
        TICKETS,
        headers=seed.headers("customer"),
        json={"subject": "Cannot log in", "body": "password rejected"},
    )
    assert made.status_code == 201, made.text
    return made.json()


async def _count(helpdesk: App, table: str, ticket_id: int) -> int:
    return int(
        await helpdesk.db.fetchval(
            f"SELECT COUNT(*) AS n FROM {table} WHERE ticket = {{}}", ticket_id
        )
    )


async def test_apply_macro_replies_changes_fields_and_moves(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    ticket = await _ticket(api, seed)
    created = await api.post(
        MACROS,
        headers=seed.headers("admin"),
        json={
            "name": "Password reset sent",
            "body": "Hello {{ requester.name }}, about {{ ticket.number }}: we sent a reset link."
            " {{ agent.name }}",
            "set_priority": "high",
            "set_category": "account/password",
            "add_tags": ["reset"],
            "transition": "wait_for_customer",
        },
    )
    assert created.status_code == 201, created.text
    macro = created.json()

    listed = await api.get(MACROS, headers=seed.headers("agent"))
    assert [m["name"] for m in listed.json()] == ["Password reset sent"]

    applied = await api.post(
        f"{MACROS}/{macro['id']}/apply",
        headers=seed.headers("agent"),
        json={"ticket_id": ticket["id"]},
    )
    assert applied.status_code == 200, applied.text
    after = applied.json()
    assert after["status"] == "pending_customer"
    assert after["priority"] == "high" and after["category"] == "account/password"
    assert after["tags"] == ["reset"]

    entries = (
        await api.get(f"{TICKETS}/{ticket['id']}/entries", headers=seed.headers("customer"))
    ).json()
    assert entries[-1]["kind"] == "message_out"
    assert entries[-1]["body_text"] == (
        f"Hello Carol Customer, about #{ticket['id']}: we sent a reset link. Alex Agent"
    )
    kinds = [
        e["kind"]
        for e in (
            await api.get(f"{TICKETS}/{ticket['id']}/events", headers=seed.headers("agent"))
        ).json()
    ]
    assert kinds[-1] == "macro_applied"
    assert {"message_added", "updated", "status_changed"} <= set(kinds)


async def test_macro_is_all_or_nothing(api: httpx.AsyncClient, seed: Seed, helpdesk: App) -> None:
    ticket = await _ticket(api, seed)
    reopen = (
        await api.post(
            MACROS,
            headers=seed.headers("admin"),
            json={"name": "Reopen", "body": "Reopening.", "transition": "reopen"},
        )
    ).json()
    entries_before = await _count(helpdesk, "entry", ticket["id"])
    events_before = await _count(helpdesk, "ticket_event", ticket["id"])

    refused = await api.post(
        f"{MACROS}/{reopen['id']}/apply",
        headers=seed.headers("agent"),
        json={"ticket_id": ticket["id"]},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "invalid_transition"
    # The reply written before the refused transition was rolled back with it.
    assert await _count(helpdesk, "entry", ticket["id"]) == entries_before
    assert await _count(helpdesk, "ticket_event", ticket["id"]) == events_before


async def test_macro_input_and_roles(api: httpx.AsyncClient, seed: Seed) -> None:
    bad_syntax = await api.post(
        MACROS,
        headers=seed.headers("admin"),
        json={"name": "Broken", "body": "Hi {{ requester.name "},
    )
    assert bad_syntax.status_code == 422 and bad_syntax.json()["field"] == "body"
    bad_transition = await api.post(
        MACROS, headers=seed.headers("admin"), json={"name": "Odd", "transition": "teleport"}
    )
    assert bad_transition.status_code == 422 and bad_transition.json()["field"] == "transition"
    by_agent = await api.post(MACROS, headers=seed.headers("agent"), json={"name": "Mine"})
    assert by_agent.status_code == 403

    ticket = await _ticket(api, seed)
    typo = (
        await api.post(
            MACROS,
            headers=seed.headers("admin"),
            json={"name": "Typo", "body": "Hi {{ requestor.name }}"},
        )
    ).json()
    failed = await api.post(
        f"{MACROS}/{typo['id']}/apply",
        headers=seed.headers("agent"),
        json={"ticket_id": ticket["id"]},
    )
    assert failed.status_code == 422 and "requestor" in failed.json()["message"]
    by_customer = await api.post(
        f"{MACROS}/{typo['id']}/apply",
        headers=seed.headers("customer"),
        json={"ticket_id": ticket["id"]},
    )
    assert by_customer.status_code == 403
    unknown = await api.post(
        f"{MACROS}/999999/apply", headers=seed.headers("agent"), json={"ticket_id": ticket["id"]}
    )
    assert unknown.status_code == 404

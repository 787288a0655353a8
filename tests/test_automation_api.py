"""The automation rules API (``/api/v1/automation/rules``): admins only, every operation,
and clear 4xx JSON errors naming the offending part. Both engines."""

from __future__ import annotations

import httpx

from ticketcore.app import App
from ticketcore.testing import Seed

RULES = "/api/v1/automation/rules"
ESCALATE = {
    "name": "escalate critical",
    "events": ["updated"],
    "conditions": [{"field": "priority", "op": "changed_to", "value": "critical"}],
    "actions": [
        {"type": "add_tags", "tags": ["escalated"]},
        {"type": "notify", "to": ["assignee"], "subject": "Critical: {{ ticket.subject }}"},
    ],
}


async def test_admin_manages_rules(api: httpx.AsyncClient, seed: Seed, helpdesk: App) -> None:
    admin = seed.headers("admin")
    made = await api.post(RULES, headers=admin, json=ESCALATE)
    assert made.status_code == 201, made.text
    first = made.json()
    assert first["enabled"] is True
    assert first["version"] == 1
    assert first["actions"][0] == {"type": "add_tags", "tags": ["escalated"]}
    second = (
        await api.post(
            RULES,
            headers=admin,
            json={
                "name": "close stale",
                "trigger": "time",
                "after_minutes": 60,
                "conditions": [{"field": "status", "op": "is", "value": "pending_customer"}],
                "actions": [{"type": "transition", "transition": "close"}],
            },
        )
    ).json()
    assert second["position"] > first["position"]

    got = await api.get(f"{RULES}/{first['id']}", headers=admin)
    assert got.json()["name"] == "escalate critical"

    changed = await api.put(
        f"{RULES}/{first['id']}", headers=admin, json={**ESCALATE, "name": "esc", "version": 1}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["version"]) == ("esc", 2)
    stale = await api.put(f"{RULES}/{first['id']}", headers=admin, json={**ESCALATE, "version": 1})
    assert stale.status_code == 409
    assert stale.json()["field"] == "version"

    off = await api.post(f"{RULES}/{first['id']}/disable", headers=admin)
    assert off.status_code == 200 and off.json()["enabled"] is False
    on = await api.post(f"{RULES}/{first['id']}/enable", headers=admin)
    assert on.json()["enabled"] is True

    order = await api.post(
        f"{RULES}/reorder", headers=admin, json={"ids": [second["id"], first["id"]]}
    )
    assert order.status_code == 200, order.text
    assert [r["id"] for r in order.json()] == [second["id"], first["id"]]
    listed = await api.get(RULES, headers=admin)
    assert [r["name"] for r in listed.json()] == ["close stale", "esc"]

    gone = await api.delete(f"{RULES}/{second['id']}", headers=admin)
    assert gone.status_code == 204
    missing = await api.get(f"{RULES}/{second['id']}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert [r["name"] for r in (await api.get(RULES, headers=admin)).json()] == ["esc"]


async def test_rules_are_for_admins_only(api: httpx.AsyncClient, seed: Seed) -> None:
    for who in ("agent", "customer"):
        listed = await api.get(RULES, headers=seed.headers(who))
        assert listed.status_code == 403, who
        made = await api.post(RULES, headers=seed.headers(who), json=ESCALATE)
        assert made.status_code == 403, who
        assert "admins only" in made.json()["message"]
    assert (await api.get(RULES)).status_code == 401


async def test_invalid_rules_get_clear_errors(api: httpx.AsyncClient, seed: Seed) -> None:
    admin = seed.headers("admin")
    cases = [
        ({**ESCALATE, "colour": "red"}, 422, "colour"),
        ({**ESCALATE, "actions": []}, 422, "actions"),
        ({**ESCALATE, "actions": [{"type": "explode"}]}, 422, "actions[0].type"),
        (
            {**ESCALATE, "conditions": [{"field": "mood", "op": "is", "value": "x"}]},
            422,
            "conditions[0].field",
        ),
        (
            {**ESCALATE, "conditions": [{"field": "priority", "op": "is", "value": "urgent"}]},
            422,
            "conditions[0].value",
        ),
        (
            {**ESCALATE, "actions": [{"type": "set_field", "field": "team", "value": "ghosts"}]},
            422,
            "actions[0].value",
        ),
        (
            {**ESCALATE, "actions": [{"type": "notify", "to": ["someone"], "subject": "x"}]},
            422,
            "actions[0].to[0]",
        ),
        ({**ESCALATE, "trigger": "time"}, 422, "after_minutes"),
    ]
    for body, status, field in cases:
        response = await api.post(RULES, headers=admin, json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()
        assert error["error"] == "validation_failed", error
        assert error.get("field") == field, (body, error)
        assert error["message"]
    assert (await api.post(RULES, headers=admin, json=ESCALATE)).status_code == 201
    again = await api.post(RULES, headers=admin, json=ESCALATE)
    assert again.status_code == 422
    assert again.json()["field"] == "name"
    bad_order = await api.post(f"{RULES}/reorder", headers=admin, json={"ids": [12345]})
    assert bad_order.status_code == 422
    assert bad_order.json()["field"] == "ids"
    assert "missing" in bad_order.json()["message"]


async def test_rule_created_through_the_api_fires(
    api: httpx.AsyncClient, seed: Seed, helpdesk: App
) -> None:
    made = await api.post(RULES, headers=seed.headers("admin"), json=ESCALATE)
    assert made.status_code == 201
    ticket = (
        await api.post(
            "/api/v1/tickets",
            headers=seed.headers("customer"),
            json={"subject": "Everything is broken", "body": "help"},
        )
    ).json()
    patched = await api.patch(
        f"/api/v1/tickets/{ticket['id']}",
        headers={**seed.headers("agent"), "If-Match": f'"{ticket["version"]}"'},
        json={"priority": "critical"},
    )
    assert patched.status_code == 200, patched.text
    await helpdesk.jobs.drain()
    after = (await api.get(f"/api/v1/tickets/{ticket['id']}", headers=seed.headers("agent"))).json()
    assert after["tags"] == ["escalated"]
    events = (
        await api.get(f"/api/v1/tickets/{ticket['id']}/events", headers=seed.headers("agent"))
    ).json()
    fired = [e for e in events if e["kind"] == "automation_fired"]
    assert fired[0]["actor"]["name"] == "rule 'escalate critical'"

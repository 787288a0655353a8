"""The admin's automation-rule and canned-response pages (both engines, in-process HTTP)."""

from __future__ import annotations

import json
import re

from web_ui_helpers import Site, site_fixture  # noqa: F401

from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal

RULE = {
    "_csrf": "",
    "name": "Printers to hardware",
    "trigger": "event",
    "events": "created",
    "since": "status",
    "conditions": json.dumps([{"field": "subject", "op": "contains", "value": "printer"}]),
    "actions": json.dumps([{"type": "add_tags", "tags": ["hardware"]}]),
    "enabled": "1",
}


def _field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">(.*?)</div>', html, re.S)
    assert found, html
    return found.group(1)


async def test_create_a_rule_that_fires_then_disable_and_reorder_it(site: Site) -> None:
    app = site.app
    admin, csrf = await site.signed_in(site.people.admin.email)
    assert (await admin.get("/admin/rules/new")).status_code == 200

    bad_json = await admin.post(
        "/admin/rules", data={**RULE, "_csrf": csrf, "actions": "[{'type': 'add_tags'"}
    )
    assert bad_json.status_code == 422
    assert "not valid JSON" in _field(bad_json.text, "actions")
    bad_op = await admin.post(
        "/admin/rules",
        data={
            **RULE,
            "_csrf": csrf,
            "conditions": json.dumps([{"field": "subject", "op": "smells", "value": "x"}]),
        },
    )
    assert bad_op.status_code == 422 and "smells" in _field(bad_op.text, "conditions")
    bad_field = await admin.post(
        "/admin/rules",
        data={
            **RULE,
            "_csrf": csrf,
            "conditions": json.dumps([{"field": "colour", "op": "is", "value": "x"}]),
        },
    )
    assert bad_field.status_code == 422 and "colour" in _field(bad_field.text, "conditions")
    assert await app.automation.list(site.people.admin) == []

    made = await admin.post("/admin/rules", data={**RULE, "_csrf": csrf})
    assert made.status_code == 303, made.text
    listed = await admin.get("/admin/rules")
    assert 'data-rule="Printers to hardware"' in listed.text

    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(subject="The printer is on fire", requester=RequesterInput(email="c@x.test")),
    )
    await app.jobs.drain()
    assert "hardware" in (await app.tickets.snapshot(ticket.id)).tags

    second = await admin.post("/admin/rules", data={**RULE, "_csrf": csrf, "name": "Second"})
    assert second.status_code == 303
    rules = await app.automation.list(site.people.admin)
    first_id, second_id = rules[0].id, rules[1].id
    await admin.post(f"/admin/rules/{second_id}/move", data={"_csrf": csrf, "direction": "up"})
    assert [r.id for r in await app.automation.list(site.people.admin)] == [second_id, first_id]

    await admin.post(f"/admin/rules/{first_id}/enabled", data={"_csrf": csrf, "enabled": ""})
    assert not (await app.automation.get(site.people.admin, first_id)).enabled

    edit = await admin.get(f"/admin/rules/{first_id}")
    assert "Printers to hardware" in edit.text and "hardware" in edit.text
    renamed = await admin.post(
        f"/admin/rules/{first_id}",
        data={**RULE, "_csrf": csrf, "name": "Printers", "version": "1"},
    )
    assert renamed.status_code == 422, "a stale version must be refused"
    version = (await app.automation.get(site.people.admin, first_id)).version
    renamed = await admin.post(
        f"/admin/rules/{first_id}",
        data={**RULE, "_csrf": csrf, "name": "Printers", "version": str(version)},
    )
    assert renamed.status_code == 303
    assert (await app.automation.get(site.people.admin, first_id)).name == "Printers"


async def test_canned_responses_create_edit_deactivate(site: Site) -> None:
    app, people = site.app, site.people
    admin, csrf = await site.signed_in(people.admin.email)
    bad = await admin.post(
        "/admin/macros", data={"_csrf": csrf, "name": "Hello", "body": "Hi {{ requester.name"}
    )
    assert bad.status_code == 422 and "placeholder" in _field(bad.text, "body")
    made = await admin.post(
        "/admin/macros",
        data={
            "_csrf": csrf,
            "name": "Hello",
            "body": "Hi {{ requester.name }}",
            "add_tags": "a, b",
        },
    )
    assert made.status_code == 303, made.text
    (macro,) = await app.macros.list(people.agent)
    assert macro.add_tags == ["a", "b"]
    edited = await admin.post(
        f"/admin/macros/{macro.id}",
        data={"_csrf": csrf, "name": "Hello there", "body": "Hi!", "set_priority": "high"},
    )
    assert edited.status_code == 303
    (macro,) = await app.macros.list(people.agent)
    assert (macro.name, macro.body, macro.set_priority) == ("Hello there", "Hi!", "high")
    await admin.post(f"/admin/macros/{macro.id}/active", data={"_csrf": csrf, "active": ""})
    assert await app.macros.list(people.agent) == []
    page = await admin.get("/admin/macros")
    assert 'data-macro="Hello there"' in page.text and "Activate" in page.text


async def test_agents_get_403_on_admin_pages(site: Site) -> None:
    agent, csrf = await site.signed_in(site.people.agent.email)
    for url in ("/admin/rules", "/admin/rules/new", "/admin/macros", "/admin/macros/new"):
        assert (await agent.get(url)).status_code == 403, url
    refused = await agent.post("/admin/rules", data={**RULE, "_csrf": csrf})
    assert refused.status_code == 403
    assert await site.app.automation.list(site.people.admin) == []

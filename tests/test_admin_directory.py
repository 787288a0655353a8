"""The admin's teams, agents and categories pages, ``GET /api/v1/categories`` and the
category choices of the portal and the agent's ticket page (both engines, in-process HTTP)."""

from __future__ import annotations

import re

from web_ui_helpers import PASSWORD, Site, sign_in, site_fixture  # noqa: F401

from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.services.categories import CategoryInput, CategoryService


def _field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">(.*?)</(?:div|fieldset)>', html, re.S)
    assert found, html
    return found.group(1)


async def test_teams_create_rename_add_and_remove_members(site: Site) -> None:
    app, people = site.app, site.people
    admin, csrf = await site.signed_in(people.admin.email)
    made = await admin.post(
        "/admin/teams", data={"_csrf": csrf, "name": "Billing", "slug": "billing"}
    )
    assert made.status_code == 303, made.text
    duplicate = await admin.post(
        "/admin/teams", data={"_csrf": csrf, "name": "Other", "slug": "billing"}
    )
    assert duplicate.status_code == 422
    assert "exists" in _field(duplicate.text, "slug") and 'value="Other"' in duplicate.text
    bad_slug = await admin.post(
        "/admin/teams", data={"_csrf": csrf, "name": "X", "slug": "Not A Slug"}
    )
    assert bad_slug.status_code == 422 and "slug" in _field(bad_slug.text, "slug")

    team = next(t for t in await app.directory.teams() if t["slug"] == "billing")
    renamed = await admin.post(
        f"/admin/teams/{team['id']}/name", data={"_csrf": csrf, "name": "Invoices"}
    )
    assert renamed.status_code == 303
    taken = await admin.post(
        f"/admin/teams/{team['id']}/name", data={"_csrf": csrf, "name": "Support"}
    )
    assert taken.status_code == 422 and "exists" in taken.text

    added = await admin.post(
        f"/admin/teams/{team['id']}/members", data={"_csrf": csrf, "user_id": str(people.agent.id)}
    )
    assert added.status_code == 303
    customer = await admin.post(
        f"/admin/teams/{team['id']}/members",
        data={"_csrf": csrf, "user_id": str(people.customer.id)},
    )
    assert customer.status_code == 422, "a customer is not put in a team"
    unknown = await admin.post(
        "/admin/teams/999999/members", data={"_csrf": csrf, "user_id": str(people.agent.id)}
    )
    assert unknown.status_code == 422 and "does not exist" in unknown.text
    team = next(t for t in await app.directory.teams() if t["id"] == team["id"])
    assert (team["name"], team["member_ids"]) == ("Invoices", [people.agent.id])
    page = await admin.get("/admin/teams")
    assert 'data-team="billing"' in page.text and "Alex Agent" in page.text

    removed = await admin.post(
        f"/admin/teams/{team['id']}/members/{people.agent.id}/remove", data={"_csrf": csrf}
    )
    assert removed.status_code == 303
    team = next(t for t in await app.directory.teams() if t["id"] == team["id"])
    assert team["member_ids"] == []


async def test_agents_create_edit_deactivate(site: Site) -> None:
    app, people = site.app, site.people
    admin, csrf = await site.signed_in(people.admin.email)
    new = {"_csrf": csrf, "name": "Nina New", "email": "nina@example.org", "role": "agent"}
    bad_email = await admin.post("/admin/agents", data={**new, "email": "not-an-address"})
    assert bad_email.status_code == 422
    assert "not an e-mail address" in _field(bad_email.text, "email")
    assert 'value="Nina New"' in bad_email.text
    unknown_team = await admin.post("/admin/agents", data={**new, "team_ids": "999999"})
    assert unknown_team.status_code == 422
    assert "does not exist" in _field(unknown_team.text, "team_ids")
    short = await admin.post("/admin/agents", data={**new, "password": "short"})
    assert short.status_code == 422 and "8 characters" in _field(short.text, "password")

    made = await admin.post(
        "/admin/agents", data={**new, "password": PASSWORD, "team_ids": str(people.team_id)}
    )
    assert made.status_code == 303, made.text
    nina = await app.auth.user_by_email("nina@example.org")
    assert nina.role.value == "agent"
    assert (
        nina.id
        in next(t for t in await app.directory.teams() if t["id"] == people.team_id)["member_ids"]
    )
    again = await admin.post("/admin/agents", data={**new, "password": PASSWORD})
    assert again.status_code == 422 and "exists" in _field(again.text, "email")
    no_password = await admin.post(
        "/admin/agents", data={**new, "email": "pat@example.org", "role": "admin"}
    )
    assert no_password.status_code == 303
    assert (await app.auth.user_by_email("pat@example.org")).role.value == "admin"

    other_team = await app.directory.create_team("Billing", "billing")
    form = await admin.get(f"/admin/agents/{nina.id}")
    assert form.status_code == 200 and "Nina New" in form.text
    profile = {
        "_csrf": csrf,
        "team_ids": str(other_team),
        "skills": "postgres: 4, Billing: 2",
        "capacity": "7",
        "availability": "away",
    }
    bad_skill = await admin.post(
        f"/admin/agents/{nina.id}", data={**profile, "skills": "postgres: 9"}
    )
    assert bad_skill.status_code == 422 and "1 to 5" in _field(bad_skill.text, "skills")
    bad_team = await admin.post(f"/admin/agents/{nina.id}", data={**profile, "team_ids": "999999"})
    assert bad_team.status_code == 422 and "does not exist" in _field(bad_team.text, "team_ids")
    assert (await app.directory.routing_profile(nina.id)).skills == {}, "nothing was saved"
    saved = await admin.post(f"/admin/agents/{nina.id}", data=profile)
    assert saved.status_code == 303, saved.text
    routing = await app.directory.routing_profile(nina.id)
    assert (routing.skills, routing.capacity, routing.availability) == (
        {"postgres": 4, "billing": 2},
        7,
        "away",
    )
    teams = {t["id"]: t["member_ids"] for t in await app.directory.teams()}
    assert nina.id in teams[other_team] and nina.id not in teams[people.team_id]

    nina_client, _ = await site.signed_in("nina@example.org")
    off = await admin.post(f"/admin/agents/{nina.id}/active", data={"_csrf": csrf, "active": ""})
    assert off.status_code == 303
    signed_out = await nina_client.get("/agent/")
    assert signed_out.status_code in (302, 303), "a deactivated agent is signed out"
    page = await admin.get("/admin/agents")
    assert 'data-agent="nina@example.org"' in page.text and "Reactivate" in page.text
    on = await admin.post(f"/admin/agents/{nina.id}/active", data={"_csrf": csrf, "active": "1"})
    assert on.status_code == 303
    await sign_in(site.client(), "nina@example.org")
    self_off = await admin.post(
        f"/admin/agents/{people.admin.id}/active", data={"_csrf": csrf, "active": ""}
    )
    assert self_off.status_code == 303
    assert await app.db.fetchval("SELECT active FROM app_user WHERE id = {}", people.admin.id)
    await sign_in(site.client(), people.admin.email)


async def test_categories_admin_api_portal_and_ticket_page(site: Site) -> None:
    app, people = site.app, site.people
    ticket = await app.tickets.create(
        Principal.system(),
        NewTicket(
            subject="Old one",
            category="legacy-text",
            requester=RequesterInput(email=people.customer.email),
        ),
    )
    agent, agent_csrf = await site.signed_in(people.agent.email)
    page = await agent.get(f"/agent/tickets/{ticket.id}")
    assert 'input id="category" name="category" value="legacy-text"' in page.text
    customer, customer_csrf = await site.signed_in(people.customer.email)
    assert 'value="billing"' in (await customer.get("/portal/new")).text, "defaults without data"

    admin, csrf = await site.signed_in(people.admin.email)
    new = {"_csrf": csrf, "slug": "hardware", "name": "Hardware", "label_fr": "Matériel"}
    made = await admin.post("/admin/categories", data={**new, "position": "2", "active": "1"})
    assert made.status_code == 303, made.text
    duplicate = await admin.post("/admin/categories", data={**new, "name": "Other", "active": "1"})
    assert duplicate.status_code == 422 and "exists" in _field(duplicate.text, "slug")
    bad = await admin.post("/admin/categories", data={**new, "slug": "Bad Slug!"})
    assert bad.status_code == 422 and "slug" in _field(bad.text, "slug")
    position = await admin.post(
        "/admin/categories", data={**new, "slug": "net", "position": "first"}
    )
    assert position.status_code == 422 and "number" in _field(position.text, "position")
    await admin.post(
        "/admin/categories",
        data={"_csrf": csrf, "slug": "network", "name": "Network", "position": "1", "active": "1"},
    )
    await admin.post(
        "/admin/categories", data={"_csrf": csrf, "slug": "retired", "name": "Retired"}
    )
    listed = await admin.get("/admin/categories")
    assert 'data-category="retired"' in listed.text

    token = await app.auth.create_token(people.customer.id, "portal")
    api = await customer.get("/api/v1/categories", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200, api.text
    assert [c["slug"] for c in api.json()] == ["network", "hardware"]
    assert api.json()[1]["label_fr"] == "Matériel"
    anonymous = await site.client().get("/api/v1/categories")
    assert anonymous.status_code == 401

    form = await customer.get("/portal/new", headers={"Accept-Language": "fr"})
    assert 'value="hardware"' in form.text and "Matériel" in form.text
    assert 'value="billing"' not in form.text and 'value="retired"' not in form.text
    opened = await customer.post(
        "/portal/new",
        data={"_csrf": customer_csrf, "subject": "Broken", "body": "Help", "category": "hardware"},
    )
    assert opened.status_code == 303
    new_id = int(re.findall(r"/portal/tickets/(\d+)", opened.headers["location"])[0])
    assert (await app.tickets.snapshot(new_id)).category == "hardware"

    page = await agent.get(f"/agent/tickets/{ticket.id}")
    assert '<select id="category" name="category">' in page.text
    assert '<option value="legacy-text" selected>' in page.text, "the old category stays"
    snapshot = await app.tickets.snapshot(ticket.id)
    fields = {
        "_csrf": agent_csrf,
        "version": str(snapshot.version),
        "priority": snapshot.priority.value,
        "category": "legacy-text",
    }
    kept = await agent.post(f"/agent/tickets/{ticket.id}/fields", data=fields)
    assert kept.status_code == 303 and "error" not in kept.headers["location"]
    unknown = await agent.post(
        f"/agent/tickets/{ticket.id}/fields", data={**fields, "category": "nope"}
    )
    assert "error" in unknown.headers["location"]
    assert (await app.tickets.snapshot(ticket.id)).category == "legacy-text"
    version = (await app.tickets.snapshot(ticket.id)).version
    changed = await agent.post(
        f"/agent/tickets/{ticket.id}/fields",
        data={**fields, "version": str(version), "category": "network"},
    )
    assert changed.status_code == 303
    assert (await app.tickets.snapshot(ticket.id)).category == "network"

    hardware = next(c for c in await CategoryService(app).list() if c.slug == "hardware")
    edited = await admin.post(
        f"/admin/categories/{hardware.id}",
        data={"_csrf": csrf, "slug": "network", "name": "Hardware"},
    )
    assert edited.status_code == 422 and "exists" in _field(edited.text, "slug")
    off = await admin.post(
        f"/admin/categories/{hardware.id}", data={"_csrf": csrf, "slug": "hardware", "name": "HW"}
    )
    assert off.status_code == 303
    assert [c.slug for c in await CategoryService(app).list(active_only=True)] == ["network"]


async def test_category_service_validates(site: Site) -> None:
    service = CategoryService(site.app)
    made = await service.create(CategoryInput(slug=" Billing ", name=" Billing "))
    assert (made.slug, made.name, made.label("fr")) == ("billing", "Billing", "Billing")


async def test_agents_get_403_on_directory_pages(site: Site) -> None:
    people = site.people
    agent, csrf = await site.signed_in(people.agent.email)
    for url in (
        "/admin/teams",
        "/admin/agents",
        f"/admin/agents/{people.agent.id}",
        "/admin/categories",
    ):
        assert (await agent.get(url)).status_code == 403, url
    posts = {
        "/admin/teams": {"name": "Evil", "slug": "evil"},
        f"/admin/teams/{people.team_id}/name": {"name": "Evil"},
        f"/admin/teams/{people.team_id}/members": {"user_id": str(people.agent.id)},
        "/admin/agents": {"name": "E", "email": "e@example.org", "role": "admin"},
        f"/admin/agents/{people.agent2.id}/active": {"active": ""},
        f"/admin/agents/{people.agent.id}": {"availability": "online", "capacity": "99"},
        "/admin/categories": {"slug": "evil", "name": "Evil", "active": "1"},
    }
    for url, data in posts.items():
        assert (await agent.post(url, data={**data, "_csrf": csrf})).status_code == 403, url
    assert [t["name"] for t in await site.app.directory.teams()] == ["Support"]
    assert await CategoryService(site.app).list() == []
    assert (await site.app.directory.routing_profile(people.agent.id)).capacity is None
    customer, _ = await site.signed_in(people.customer.email)
    assert (await customer.get("/admin/categories")).status_code == 403
    anonymous = await site.client().post("/admin/teams", data={"name": "X", "slug": "x"})
    assert anonymous.status_code in (302, 303, 403)

"""Agents' in-app notifications: assigned, @mentioned, SLA alerts; the inbox API; each event
notifies once, even when delivered again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ticketcore import Priority
from ticketcore.app import App
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewEntry, NewTicket, NewUser, RequesterInput, TicketPatch
from ticketcore.domain.enums import Role
from ticketcore.services.mentions import StaffMember, handles, mentioned
from ticketcore.testing import Seed, api_client, seed_helpdesk

HelpdeskFactory = Callable[..., Awaitable[App]]


@pytest.fixture(autouse=True)
def fresh_entry_point_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stevedore's entry-point cache in a folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def settings(*, sla: bool = False, **in_app: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "plugins": {"notifiers": ["in_app"]},
        "plugin": {"notifiers": {"in_app": in_app}},
    }
    if sla:
        config["plugins"]["sla"] = ["policy"]
        config["plugin"]["sla"] = {
            "policy": {
                "rules": [
                    {
                        "name": "critical",
                        "match": {"priority": ["critical"]},
                        "first_response": "15m",
                        "resolution": "30m",
                    },
                    {"name": "standard", "first_response": "4h", "resolution": "2d"},
                ]
            }
        }
    return config


async def inbox(app: App, user_id: int) -> list[tuple[str, int | None]]:
    """(kind, ticket id) of a user's notifications, oldest first."""
    page = await app.agent_notifications.list_for(user_id, limit=100)
    return [(n.kind, n.ticket_id) for n in reversed(page.items)]


async def open_ticket(app: App, seed: Seed, **more: Any) -> int:
    ticket = await app.tickets.create(
        seed.admin,
        NewTicket(
            subject="Mail server slow",
            body="Everything takes a minute.",
            requester=RequesterInput(email="carol@customer.test"),
            **more,
        ),
    )
    return ticket.id


async def redeliver(app: App, kinds: tuple[str, ...] = ("ticket_event", "notify")) -> int:
    """Queue every finished job of ``kinds`` again as if its success was never recorded."""
    marks = ", ".join(["{}"] * len(kinds))
    rows = await app.db.fetch(f"SELECT id, payload FROM job WHERE kind IN ({marks})", *kinds)
    async with app.db.transaction():
        for row in rows:
            payload = row["payload"]
            data = msgspec.json.decode(payload) if isinstance(payload, str | bytes) else payload
            data.pop("done", None)
            await app.db.fetch(
                "UPDATE job SET status = 'pending', run_at = {}, attempts = 0, payload = {} "
                "WHERE id = {}",
                app.clock.now(),
                msgspec.json.encode(data).decode(),
                row["id"],
            )
    await app.jobs.drain()
    return len(rows)


# --- assignment ----------------------------------------------------------------------------


@pytest.mark.db
async def test_agents_are_told_when_a_ticket_is_assigned_to_them(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**settings())
    seed = await seed_helpdesk(app)
    first = await open_ticket(app, seed, team_id=seed.team_id, assignee_id=seed.agent.id)
    await app.jobs.drain()
    assert await inbox(app, seed.agent.id) == [("assigned", first)]
    [note] = (await app.agent_notifications.list_for(seed.agent.id)).items
    assert note.title == f"#{first} assigned to you: Mail server slow"
    assert note.body == "Assigned by Ada Admin." and note.read_at is None

    # Reassigned by the admin: the new assignee is told; taking a ticket oneself is silent.
    ticket = await app.tickets.snapshot(first)
    ticket = await app.tickets.update(
        seed.admin, first, TicketPatch(assignee_id=seed.agent2.id, version=ticket.version)
    )
    await app.tickets.update(
        seed.agent, first, TicketPatch(assignee_id=seed.agent.id, version=ticket.version)
    )
    unassigned = await open_ticket(app, seed)
    await app.jobs.drain()
    assert await inbox(app, seed.agent2.id) == [("assigned", first)]
    assert await inbox(app, seed.agent.id) == [("assigned", first)]
    assert all(t != unassigned for _, t in await inbox(app, seed.admin.id))

    # A redelivered event (the worker died before recording success) notifies nobody again.
    assert await redeliver(app) > 0
    assert await inbox(app, seed.agent.id) == [("assigned", first)]
    assert await inbox(app, seed.agent2.id) == [("assigned", first)]


# --- mentions ------------------------------------------------------------------------------


def test_mentions_are_handles_of_active_staff() -> None:
    staff = [
        StaffMember(id=1, name="Alex Agent", email="agent@example.org"),
        StaffMember(id=2, name="Sam Second", email="agent2@example.org"),
        StaffMember(id=3, name="Ada Admin", email="admin@example.org"),
    ]

    def ids(text: str) -> list[int]:
        return [m.id for m in mentioned(text, staff)]

    assert handles("Hi @Agent2, and @alex.agent. Thanks @agent2!") == ["agent2", "alex.agent"]
    assert ids("@agent2 can you look?") == [2]
    assert ids("cc @Sam_Second and @ada.admin") == [2, 3]
    assert ids("ask @Alex Agent about it") == [1]  # the full name, with its space
    assert ids("write to agent@example.org or agent2@example.org") == []  # addresses
    assert ids("@nobody and @ and a@b") == []
    assert ids("(@agent)") == [1]


@pytest.mark.db
async def test_mentions_in_notes_and_replies_notify_the_staff_named(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**settings())
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(app, seed)
    note = await app.tickets.add_entry(
        seed.agent,
        ticket_id,
        NewEntry(body="@agent2 can you check the logs? cc @Ada Admin. I (@agent) will call."),
        internal=True,
    )
    await app.jobs.drain()
    assert await inbox(app, seed.agent2.id) == [("mentioned", ticket_id)]
    assert await inbox(app, seed.admin.id) == [("mentioned", ticket_id)]
    assert await inbox(app, seed.agent.id) == []  # one's own mention: no notification
    [item] = (await app.agent_notifications.list_for(seed.agent2.id)).items
    assert item.title == f"Alex Agent mentioned you in a note on #{ticket_id}: Mail server slow"
    assert item.body.startswith("@agent2 can you check the logs?")
    assert item.data == {"entry_id": note.id, "entry_kind": "note"}

    # A public reply mentioning a colleague; a customer's message and a deactivated agent
    # mention nobody.
    gone = await app.auth.create_user(
        NewUser(email="gone@example.org", name="Gone Agent", role=Role.AGENT)
    )
    await app.db.fetch("UPDATE app_user SET active = {} WHERE id = {}", False, gone.id)
    await app.tickets.add_entry(
        seed.agent2, ticket_id, NewEntry(body="Thanks, @agent will call you."), internal=False
    )
    await app.tickets.add_entry(
        seed.agent, ticket_id, NewEntry(body="@gone please look"), internal=True
    )
    customer_ticket = await app.tickets.create(
        seed.customer, NewTicket(subject="Hi", body="Hello @agent2 and @admin!")
    )
    await app.tickets.add_entry(
        seed.customer, customer_ticket.id, NewEntry(body="@agent2 ping"), internal=False
    )
    await app.jobs.drain()
    assert await inbox(app, seed.agent.id) == [("mentioned", ticket_id)]
    assert await inbox(app, seed.agent2.id) == [("mentioned", ticket_id)]
    assert await inbox(app, gone.id) == []

    assert await redeliver(app) > 0
    assert await inbox(app, seed.agent2.id) == [("mentioned", ticket_id)]
    assert await inbox(app, seed.admin.id) == [("mentioned", ticket_id)]


# --- SLA alerts -----------------------------------------------------------------------------


@pytest.mark.db
async def test_sla_warnings_and_breaches_reach_the_assignee_in_the_app(
    helpdesk_factory: HelpdeskFactory, clock: FrozenClock
) -> None:
    app = await helpdesk_factory(**settings(sla=True))
    seed = await seed_helpdesk(app)
    ticket_id = await open_ticket(
        app, seed, priority=Priority.CRITICAL, team_id=seed.team_id, assignee_id=seed.agent.id
    )
    other = await open_ticket(app, seed, priority=Priority.CRITICAL)  # nobody's
    await app.jobs.drain()
    clock.advance(minutes=12)  # 75 % of the 15-minute first response
    await app.jobs.drain()
    assert await inbox(app, seed.agent.id) == [("assigned", ticket_id), ("sla_warning", ticket_id)]
    warning = (await app.agent_notifications.list_for(seed.agent.id)).items[0]
    assert warning.title == f"SLA warning: #{ticket_id} Mail server slow"
    assert "first response" in warning.body and warning.data["target"] == "first response"

    clock.advance(minutes=4)  # the first response is overdue
    await app.jobs.drain()
    kinds = [k for k, t in await inbox(app, seed.agent.id)]
    assert kinds == ["assigned", "sla_warning", "sla_breach"]
    assert all(t != other for _, t in await inbox(app, seed.agent.id))

    assert await redeliver(app) > 0
    kinds = [k for k, t in await inbox(app, seed.agent.id)]
    assert kinds == ["assigned", "sla_warning", "sla_breach"]
    rows = await app.db.fetch("SELECT COUNT(*) AS n FROM agent_notification")
    assert rows[0]["n"] == 3


# --- the inbox API --------------------------------------------------------------------------


@pytest.mark.db
async def test_the_inbox_api_lists_counts_and_marks_read_only_ones_own(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**settings())
    seed = await seed_helpdesk(app)
    tickets = []
    for _ in range(3):  # one at a time: their notifications then come in this order
        tickets.append(
            await open_ticket(app, seed, team_id=seed.team_id, assignee_id=seed.agent.id)
        )
        await app.jobs.drain()
    theirs = await open_ticket(app, seed, team_id=seed.team_id, assignee_id=seed.agent2.id)
    await app.jobs.drain()
    agent, agent2 = seed.headers("agent"), seed.headers("agent2")
    async with api_client(app) as api:
        page = (await api.get("/api/v1/notifications?limit=2", headers=agent)).json()
        assert [n["ticket_id"] for n in page["items"]] == [tickets[2], tickets[1]]
        assert page["unread"] == 3 and page["next_cursor"]
        rest = await api.get(
            "/api/v1/notifications", params={"cursor": page["next_cursor"]}, headers=agent
        )
        assert [n["ticket_id"] for n in rest.json()["items"]] == [tickets[0]]
        assert rest.json()["next_cursor"] is None
        count = await api.get("/api/v1/notifications/unread-count", headers=agent)
        assert count.json() == {"unread": 3}

        newest = page["items"][0]["id"]
        done = await api.post(f"/api/v1/notifications/{newest}/read", headers=agent)
        assert done.status_code == 200 and done.json() == {"marked": 1, "unread": 2}
        again = await api.post(f"/api/v1/notifications/{newest}/read", headers=agent)
        assert again.json() == {"marked": 0, "unread": 2}
        # Someone else's notification: nothing changes for its owner.
        stolen = await api.post(f"/api/v1/notifications/{newest}/read", headers=agent2)
        assert stolen.json() == {"marked": 0, "unread": 1}
        unread = await api.get("/api/v1/notifications?unread_only=true", headers=agent)
        assert [n["ticket_id"] for n in unread.json()["items"]] == [tickets[1], tickets[0]]
        assert unread.json()["items"][0]["read_at"] is None

        some = await api.post(
            "/api/v1/notifications/read",
            json={"up_to": unread.json()["items"][1]["id"]},
            headers=agent,
        )
        assert some.json() == {"marked": 1, "unread": 1}
        everything = await api.post("/api/v1/notifications/read", json={"all": True}, headers=agent)
        assert everything.json() == {"marked": 1, "unread": 0}
        bad = await api.post("/api/v1/notifications/read", json={}, headers=agent)
        assert bad.status_code == 422

        mine2 = (await api.get("/api/v1/notifications", headers=agent2)).json()
        assert [n["ticket_id"] for n in mine2["items"]] == [theirs] and mine2["unread"] == 1
        customer = await api.get("/api/v1/notifications", headers=seed.headers("customer"))
        assert customer.status_code == 403
        anonymous = await api.get("/api/v1/notifications")
        assert anonymous.status_code == 401

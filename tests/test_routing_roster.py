"""The routing snapshot kept between batches: reused while the database says nothing changed,
reloaded as soon as an agent, team, membership or skill changes (whoever changes it, raw SQL
included: triggers keep the version), or another helpdesk assigns. Both engines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ticketcore.app import App, create_helpdesk
from ticketcore.clock import FrozenClock
from ticketcore.domain.commands import NewTicket, NewUser, RequesterInput
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.services import routing

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()
CONFIG = {
    "plugins": {"routing": ["round_robin"]},
    "plugin": {"routing": {"round_robin": {"default_team": "ops"}}},
}


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts full roster loads (the queries of teams, members and skills)."""
    counted: list[int] = []
    original = routing._load_roster

    async def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(routing, "_load_roster", counting)
    return counted


async def team(app: App, names: list[str]) -> list[int]:
    team_id = await app.directory.create_team("Ops", "ops")
    ids = []
    for name in names:
        user = await app.auth.create_user(
            NewUser(email=f"{name}@ops.example", name=name, role=Role.AGENT, team_ids=[team_id])
        )
        ids.append(user.id)
    return ids


async def assign(app: App, n: int) -> list[int | None]:
    made = []
    for i in range(n):
        ticket = await app.tickets.create(
            SYSTEM, NewTicket(subject=f"t{i}", requester=RequesterInput(email="c@x.example"))
        )
        made.append(ticket.assignee_id)
    return made


async def test_snapshot_is_reused_until_the_roster_changes(
    helpdesk_factory: HelpdeskFactory, loads: list[int]
) -> None:
    app = await helpdesk_factory(**CONFIG)
    ann, bob, cid = await team(app, ["Ann", "Bob", "Cid"])
    assert await assign(app, 6) == [ann, bob, cid, ann, bob, cid]
    assert len(loads) == 1  # one load, then the cached snapshot kept in step

    # An agent goes away through raw SQL: the trigger bumps the version, routing reloads.
    await app.db.fetch("UPDATE app_user SET availability = 'away' WHERE id = {}", bob)
    assert await assign(app, 4) == [ann, cid, ann, cid]
    assert len(loads) == 2

    # A new skill, a new member: reloads again, and the newcomer joins the rotation.
    await app.directory.set_skills(ann, {"db": 2})
    await assign(app, 1)
    assert len(loads) == 3
    ops = int(await app.db.fetchval("SELECT id FROM team WHERE slug = 'ops'"))
    dee = await app.auth.create_user(
        NewUser(email="dee@ops.example", name="Dee", role=Role.AGENT, team_ids=[ops])
    )
    got = await assign(app, 3)
    assert len(loads) == 4
    assert dee.id in got and bob not in got


async def test_another_helpdesks_assignments_force_a_reload(
    helpdesk_factory: HelpdeskFactory,
    settings_factory: Callable[..., Any],
    clock: FrozenClock,
    loads: list[int],
) -> None:
    first = await helpdesk_factory(**CONFIG)
    agents = await team(first, ["Ann", "Bob", "Cid"])
    second = create_helpdesk(settings_factory(**CONFIG), clock=clock)  # another process
    await second.start()
    try:
        made: list[int | None] = []
        for _ in range(5):  # alternate: each must see the other's assignments
            made += await assign(first, 2)
            made += await assign(second, 1)
    finally:
        await second.stop()
    counts = Counter(made)
    assert set(counts) == set(agents)
    assert max(counts.values()) - min(counts.values()) <= 1, made
    # In write order the rotation never repeats an agent within a round.
    order = [r["assignee"] for r in await first.db.fetch("SELECT assignee FROM ticket ORDER BY id")]
    assert all(len(set(order[i : i + 3])) == 3 for i in range(len(order) - 2)), order
    assert len(loads) >= 10  # every switch between helpdesks reloaded


async def test_a_rolled_back_batch_is_not_remembered(
    helpdesk_factory: HelpdeskFactory, loads: list[int]
) -> None:
    app = await helpdesk_factory(**CONFIG)
    ann, bob, cid = await team(app, ["Ann", "Bob", "Cid"])
    assert await assign(app, 1) == [ann]
    with pytest.raises(RuntimeError):
        async with app.db.transaction():
            await assign(app, 1)  # routed to Bob inside this transaction, then rolled back
            raise RuntimeError("abort")
    # Bob's assignment never happened: he is still next.
    assert await assign(app, 3) == [bob, cid, ann]

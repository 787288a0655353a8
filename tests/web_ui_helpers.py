"""Shared helpers of the web page tests: people with passwords, and a signed-in client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from ticketcore.app import App
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


@dataclass
class People:
    """A team, an admin, two agents in the team and two customers, all with PASSWORD."""

    team_id: int
    admin: Principal
    agent: Principal
    agent2: Principal
    customer: Principal
    other: Principal


async def make_people(app: App) -> People:
    """Create the people of :class:`People`."""
    team_id = await app.directory.create_team("Support", "support")

    async def user(email: str, name: str, role: Role, teams: list[int] | None = None) -> Principal:
        cmd = NewUser(email=email, name=name, role=role, password=PASSWORD, team_ids=teams or [])
        return await app.auth.create_user(cmd)

    return People(
        team_id=team_id,
        admin=await user("ada@example.org", "Ada Admin", Role.ADMIN),
        agent=await user("alex@example.org", "Alex Agent", Role.AGENT, [team_id]),
        agent2=await user("sam@example.org", "Sam Second", Role.AGENT, [team_id]),
        customer=await user("carol@customer.test", "Carol Customer", Role.CUSTOMER),
        other=await user("dave@customer.test", "Dave Other", Role.CUSTOMER),
    )


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; return the CSRF token of the new session."""
    page = await client.get("/login")
    response = await client.post(
        "/login", data={"_csrf": csrf_of(page.text), "email": email, "password": password}
    )
    assert response.status_code == 303, response.text
    home = await client.get(response.headers["location"], follow_redirects=True)
    return csrf_of(home.text)


@dataclass
class Site:
    """A started helpdesk with people, its web app, and clients for it."""

    app: App
    people: People
    web: Any
    clients: list[httpx.AsyncClient]

    def client(self, **headers: str) -> httpx.AsyncClient:
        """A new browser-like client (its own cookie jar)."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.web),
            base_url="http://ticketcore.test",
            headers=headers,
        )
        self.clients.append(client)
        return client

    async def signed_in(self, email: str, **headers: str) -> tuple[httpx.AsyncClient, str]:
        """A client signed in as ``email`` and its CSRF token."""
        client = self.client(**headers)
        return client, await sign_in(client, email)


@pytest_asyncio.fixture(name="site")
async def site_fixture(helpdesk_factory: Callable[..., Awaitable[App]]) -> AsyncIterator[Site]:
    """A helpdesk (both engines) with people, served in-process over plain HTTP."""
    from ticketcore.web import create_app

    app = await helpdesk_factory(web={"secure_cookies": False})
    people = await make_people(app)
    made = Site(app=app, people=people, web=create_app(app, run_worker=False), clients=[])
    yield made
    for client in made.clients:
        await client.aclose()

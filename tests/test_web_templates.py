"""Languages and template lookup: English and French catalogues, the choice of language,
organisation overrides and plugin templates."""

from __future__ import annotations

import re
import string
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from web_ui_helpers import Site, make_people, sign_in, site_fixture  # noqa: F401

from ticketcore import hookimpl
from ticketcore.app import App
from ticketcore.domain.commands import NewTicket
from ticketcore.web import create_app
from ticketcore.web.ui.i18n import CATALOGUES, choose_language, parse_accept_language
from ticketcore.web.ui.templating import BUILTIN_TEMPLATES

HelpdeskFactory = Callable[..., Awaitable[App]]


UI = Path(__file__).resolve().parents[1] / "web" / "ui"


def test_catalogues_have_the_same_ids_and_placeholders() -> None:
    english, french = CATALOGUES["en"], CATALOGUES["fr"]
    assert set(english) == set(french)

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key, text in english.items():
        assert fields(text) == fields(french[key]), key


def test_every_message_id_used_exists() -> None:
    sources = [p.read_text() for p in BUILTIN_TEMPLATES.rglob("*.html")]
    sources += [p.read_text() for p in UI.glob("*.py")]
    used = set()
    for text in sources:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_]+)["']""", text))
    assert used, "no message ids found: did the pattern change?"
    assert sorted(used - set(CATALOGUES["en"])) == []


def test_language_choice() -> None:
    assert parse_accept_language("de-CH, fr;q=0.8, en;q=0.5") == ["de", "fr", "en"]
    assert parse_accept_language("en;q=0.2, fr-FR") == ["fr", "en"]
    assert choose_language(None, "de, fr;q=0.5") == "fr"
    assert choose_language(None, "de") == "en"
    assert choose_language(None, "de", default="fr") == "fr"
    assert choose_language("en", "fr") == "en"  # the user's own choice wins
    assert choose_language("xx", "fr") == "fr"


@pytest.mark.db
async def test_pages_follow_the_browser_then_the_users_choice(site: Site) -> None:
    french = site.client(**{"Accept-Language": "fr-FR,fr;q=0.9"})
    page = await french.get("/login")
    assert '<html lang="fr">' in page.text and "Mot de passe" in page.text
    csrf = await sign_in(french, site.people.agent.email)
    queue = await french.get("/agent/queue/mine")
    assert "Les miennes" in queue.text and "Non attribuées" in queue.text
    switched = await french.post(
        "/language", data={"_csrf": csrf, "language": "en", "back": "/agent/queue/team"}
    )
    assert switched.headers["location"] == "/agent/queue/team"
    queue = await french.get("/agent/queue/mine")
    assert '<html lang="en">' in queue.text and "Unassigned" in queue.text
    # The choice survives signing out and in again.
    await french.post("/logout", data={"_csrf": csrf})
    assert "Password" in (await french.get("/login")).text


class TemplatePlugin:
    """A plugin adding a template folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def register_templates(self) -> list[Path]:
        return [self.folder]


@pytest.mark.db
async def test_overrides_organisation_then_plugin_then_builtin(
    helpdesk_factory: HelpdeskFactory, tmp_path: Path
) -> None:
    org = tmp_path / "org"
    plugin = tmp_path / "plugin"
    (plugin / "agent").mkdir(parents=True)
    org.mkdir()
    # The organisation re-titles the sign-in page, extending the built-in one.
    (org / "login.html").write_text(
        '{% extends "builtin/login.html" %}{% block title %}Acme support{% endblock %}'
    )
    # The plugin's own login.html is shadowed by the organisation's ...
    (plugin / "login.html").write_text("PLUGIN LOGIN")
    # ... and it adds a block to the ticket page.
    (plugin / "agent" / "ticket.html").write_text(
        '{% extends "builtin/agent/ticket.html" %}{% block compose %}{{ super() }}'
        '<p id="plugin-panel">Checklist for {{ ticket.number }}</p>{% endblock %}'
    )
    app = await helpdesk_factory(
        web={"secure_cookies": False, "templates_dir": str(org)},
        extra_plugins=[("ui_checklist", TemplatePlugin(plugin))],
    )
    people = await make_people(app)
    ticket = await app.tickets.create(people.customer, NewTicket(subject="S", body="b"))
    site = Site(app=app, people=people, web=create_app(app, run_worker=False), clients=[])
    try:
        client = site.client()
        login = await client.get("/login")
        assert "<title>Acme support · TicketCore</title>" in login.text
        assert "PLUGIN LOGIN" not in login.text and 'name="password"' in login.text
        await sign_in(client, people.agent.email)
        page = await client.get(f"/agent/tickets/{ticket.id}")
        assert f'<p id="plugin-panel">Checklist for #{ticket.id}</p>' in page.text
        assert 'id="compose"' in page.text  # super() kept the built-in form
    finally:
        for client in site.clients:
            await client.aclose()

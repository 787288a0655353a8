"""Enrichment plugins: ``directory_vip`` (VIP contacts and organisations raise priority),
``csv_crm`` (customer data from a CSV export, read once at start-up) and ``http_crm`` (a CRM's
HTTP API, served here by a real local HTTP server), as pure hooks and on tickets created
through the service, on both engines."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import msgspec
import pytest

from ticketcore import Contact, Priority, Status, Ticket
from ticketcore.app import App
from ticketcore.domain.commands import NewTicket, RequesterInput
from ticketcore.domain.models import Principal
from ticketcore.errors import ConfigError
from ticketcore.plugins.triage import csv_crm, directory, http_crm

HelpdeskFactory = Callable[..., Awaitable[App]]
SYSTEM = Principal.system()


def ticket(
    priority: Priority = Priority.NORMAL,
    *,
    vip: bool = False,
    email: str = "jo@acme.example",
    organisation: str | None = None,
) -> Ticket:
    """A new ticket snapshot from a requester with these properties."""
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return Ticket(
        id=0,
        key="k",
        subject="Help",
        status=Status.NEW,
        priority=priority,
        category=None,
        channel="email",
        requester=Contact(id=1, name="Jo", email=email, vip=vip, organisation=organisation),
        team_id=None,
        assignee_id=None,
        tags=[],
        custom_fields={},
        version=1,
        created_at=now,
        updated_at=now,
    )


def vip_plugin(**config: Any) -> directory.DirectoryVip:
    return directory.create(msgspec.convert(config, directory.Config))


# --- directory_vip --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raise_to", "before", "after"),
    [
        ("high", "low", "high"),
        ("high", "normal", "high"),
        ("high", "high", None),  # already there: not raised
        ("high", "critical", None),  # never lowered
        ("one_step", "low", "normal"),
        ("one_step", "normal", "high"),
        ("one_step", "high", "critical"),
        ("one_step", "critical", None),
        ("critical", "normal", "critical"),
    ],
)
def test_vip_priority(raise_to: str, before: str, after: str | None) -> None:
    answer = vip_plugin(raise_to=raise_to).enrich_ticket(ticket=ticket(Priority(before), vip=True))
    assert answer is not None
    assert answer.get("priority") == after
    assert answer["vip"] is True
    assert "VIP requester 'Jo'" in answer["reason"]


def test_non_vip_gets_nothing_and_the_reason_names_the_organisation() -> None:
    plugin = vip_plugin()
    assert plugin.enrich_ticket(ticket=ticket(vip=False)) is None
    answer = plugin.enrich_ticket(ticket=ticket(vip=True, organisation="Acme"))
    assert answer is not None
    assert answer["reason"] == ("VIP requester 'Jo' of 'Acme': priority raised from normal to high")
    assert (
        vip_plugin(mark_field="", raise_to="high").enrich_ticket(
            ticket=ticket(Priority.HIGH, vip=True)
        )
        is None
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"raise_to": "urgent"}, directory.Config)


def vip_settings(**config: Any) -> dict[str, Any]:
    return {
        "plugins": {"plugins": ["directory_vip"]},
        "plugin": {"plugins": {"directory_vip": config}},
    }


async def test_vip_contact_and_vip_organisation_raise_priority(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    app = await helpdesk_factory(**vip_settings())
    vip_org = await app.directory.create_organisation("Big Bank", "bigbank.example", vip=True)
    plain_org = await app.directory.create_organisation("Small Shop", "shop.example")
    await app.directory.create_contact("Vera", "vera@bigbank.example", organisation_id=vip_org)
    await app.directory.create_contact(
        "Vic", "vic@shop.example", vip=True, organisation_id=plain_org
    )
    await app.directory.create_contact("Paul", "paul@shop.example", organisation_id=plain_org)

    async def open_for(email: str) -> Ticket:
        return await app.tickets.create(
            SYSTEM, NewTicket(subject="Help", requester=RequesterInput(email=email))
        )

    by_org = await open_for("vera@bigbank.example")
    by_contact = await open_for("vic@shop.example")
    plain = await open_for("paul@shop.example")
    unknown = await open_for("new@elsewhere.example")
    assert by_org.priority == by_contact.priority == Priority.HIGH
    assert plain.priority == unknown.priority == Priority.NORMAL
    assert by_org.custom_fields == {"vip": True}
    stored = await app.tickets.snapshot(by_org.id)
    assert (stored.priority, stored.custom_fields) == (Priority.HIGH, {"vip": True})
    history = await app.tickets.events(SYSTEM, by_org.id)
    [enriched] = [e for e in history if e.kind == "enriched"]
    assert enriched.data["plugin"] == "plugins.directory_vip"
    assert enriched.data["reason"] == (
        "VIP requester 'Vera' of 'Big Bank': priority raised from normal to high"
    )
    assert (enriched.changes["priority"].old, enriched.changes["priority"].new) == (
        "normal",
        "high",
    )
    assert [e.kind for e in await app.tickets.events(SYSTEM, plain.id)] == ["created"]


# --- csv_crm --------------------------------------------------------------------------------

CSV = """\ufeffemail,domain,tier,vip,account_manager,plan
,acme.example,gold,no,Ann,enterprise
boss@acme.example,,platinum,yes,Ann,enterprise
,tiny.example,,,,
"""


@pytest.fixture
def crm_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def crm_plugin(path: Path, **config: Any) -> csv_crm.CsvCrm:
    return csv_crm.create(msgspec.convert({"path": str(path), **config}, csv_crm.Config))


def test_crm_lookup_by_email_then_domain(crm_file: Path) -> None:
    crm = crm_plugin(crm_file, tier_priority={"platinum": "critical"})
    boss = crm.enrich_ticket(ticket=ticket(email="Boss@ACME.example"))
    assert boss == {
        "tier": "platinum",
        "vip": True,
        "account_manager": "Ann",
        "plan": "enterprise",
        "priority": "critical",
        "reason": (
            "CRM customers.csv: e-mail 'boss@acme.example' (tier 'platinum', VIP); "
            "priority raised from normal to critical"
        ),
    }
    staff = crm.enrich_ticket(ticket=ticket(email="jo@support.acme.example"))  # parent domain
    assert staff is not None
    assert staff["tier"] == "gold" and staff["vip"] is False and "priority" not in staff
    assert staff["reason"] == "CRM customers.csv: domain 'acme.example' (tier 'gold')"
    tiny = crm.enrich_ticket(ticket=ticket(email="x@tiny.example"))
    assert tiny == {
        "tier": None,
        "vip": False,
        "reason": "CRM customers.csv: domain 'tiny.example'",
    }
    assert crm.enrich_ticket(ticket=ticket(email="x@notacme.example")) is None
    assert crm.enrich_ticket(ticket=ticket(email="x@example")) is None
    prefixed = crm_plugin(crm_file, field_prefix="crm_", vip_priority=None)
    answer = prefixed.enrich_ticket(ticket=ticket(email="boss@acme.example"))
    assert answer is not None and "priority" not in answer
    assert answer["crm_tier"] == "platinum"


def test_crm_file_is_read_once_at_creation(crm_file: Path) -> None:
    crm = crm_plugin(crm_file)
    crm_file.unlink()  # lookups use the copy in memory
    answer = crm.enrich_ticket(ticket=ticket(email="boss@acme.example"))
    assert answer is not None and answer["priority"] == "high"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("name,tier\nx,gold\n", "needs an email or a domain column"),
        ("email,vip\na@b.example,maybe\n", "vip must be true or false"),
        ("email,domain\n,\n", "neither email nor domain"),
        ("domain\na.example\na.example\n", "'a.example' is already on line 2"),
        ("email\na@b.example,extra\n", "more values than columns"),
    ],
)
def test_malformed_crm_file_is_refused(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=problem) as caught:
        crm_plugin(path)
    assert str(path) in str(caught.value)


def crm_settings(path: Path | str) -> dict[str, Any]:
    return {
        "plugins": {"plugins": ["csv_crm"]},
        "plugin": {"plugins": {"csv_crm": {"path": str(path)}}},
    }


async def test_missing_crm_file_stops_start_up(
    helpdesk_factory: HelpdeskFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "crm.csv"
    with pytest.raises(ConfigError) as caught:
        await helpdesk_factory(**crm_settings(missing))
    text = str(caught.value)
    assert "plugins.csv_crm" in text and str(missing) in text


async def test_crm_data_lands_in_custom_fields(
    helpdesk_factory: HelpdeskFactory, crm_file: Path
) -> None:
    app = await helpdesk_factory(**crm_settings(crm_file))
    boss = await app.tickets.create(
        SYSTEM,
        NewTicket(
            subject="Urgent",
            requester=RequesterInput(email="boss@acme.example"),
            custom_fields={"order": "42"},
        ),
    )
    assert boss.priority == Priority.HIGH
    stored = await app.tickets.snapshot(boss.id)
    assert stored.custom_fields == {
        "order": "42",
        "tier": "platinum",
        "vip": True,
        "account_manager": "Ann",
        "plan": "enterprise",
    }
    assert stored.priority == Priority.HIGH
    [enriched] = [e for e in await app.tickets.events(SYSTEM, boss.id) if e.kind == "enriched"]
    assert enriched.data["plugin"] == "plugins.csv_crm"
    assert "e-mail 'boss@acme.example'" in enriched.data["reason"]


# --- http_crm -------------------------------------------------------------------------------


class FakeCrm:
    """A real HTTP server on 127.0.0.1 answering ``/customers?email=...`` from a dict."""

    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records
        self.seen: list[tuple[str, str | None]] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                email = query.get("email", [""])[0]
                crm.seen.append((email, self.headers.get("Authorization")))
                record = crm.records.get(email)
                status = 404 if record is None else 500 if record == "boom" else 200
                body = json.dumps(record if status == 200 else {"error": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/customers?email={{email}}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake_crm() -> Iterator[FakeCrm]:
    crm = FakeCrm(
        {
            "boss@acme.example": {"tier": "gold", "vip": True, "account_manager": "Ann"},
            "jo@acme.example": {"tier": "silver", "vip": False},
            "broken@acme.example": "boom",
        }
    )
    yield crm
    crm.close()


def http_settings(url: str, **config: Any) -> dict[str, Any]:
    return {
        "plugins": {"plugins": ["http_crm"]},
        "plugin": {"plugins": {"http_crm": {"url": url, **config}}},
    }


async def test_http_crm_enriches_caches_and_isolates_failures(
    helpdesk_factory: HelpdeskFactory, fake_crm: FakeCrm
) -> None:
    app = await helpdesk_factory(
        env={"CRM_AUTH": "Bearer s3cret"},
        **http_settings(
            fake_crm.url,
            headers={"Authorization": {"env": "CRM_AUTH"}},
            tier_priority={"silver": "low"},
        ),
    )

    async def open_for(email: str) -> Ticket:
        return await app.tickets.create(
            SYSTEM, NewTicket(subject="Help", requester=RequesterInput(email=email))
        )

    boss = await open_for("Boss@acme.example")
    assert boss.priority == Priority.HIGH
    assert boss.custom_fields == {"tier": "gold", "vip": True, "account_manager": "Ann"}
    [enriched] = [e for e in await app.tickets.events(SYSTEM, boss.id) if e.kind == "enriched"]
    assert enriched.data == {
        "plugin": "plugins.http_crm",
        "reason": "CRM lookup of 'boss@acme.example' (tier 'gold', VIP); "
        "priority raised from normal to high",
    }
    assert fake_crm.seen == [("boss@acme.example", "Bearer s3cret")]

    again = await open_for("boss@acme.example")
    assert again.priority == Priority.HIGH
    assert len(fake_crm.seen) == 1  # answered from the cache

    silver = await open_for("jo@acme.example")
    assert silver.priority == Priority.NORMAL  # a tier's priority never lowers
    unknown = await open_for("nobody@acme.example")
    assert unknown.custom_fields == {}
    assert [e.kind for e in await app.tickets.events(SYSTEM, unknown.id)] == ["created"]

    broken = await open_for("broken@acme.example")  # the CRM fails: the ticket is created
    history = await app.tickets.events(SYSTEM, broken.id)
    [failed] = [e for e in history if e.kind == "enrichment_failed"]
    assert failed.data["plugin"] == "plugins.http_crm"
    assert "500" in failed.data["error"]
    # The secret header is masked wherever the configuration is shown.
    [plugin] = app.plugins
    assert "s3cret" not in json.dumps(plugin.raw_config)


async def test_http_crm_settings_are_checked_at_start_up(
    helpdesk_factory: HelpdeskFactory,
) -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        await helpdesk_factory(**http_settings("https://crm.example/api/customers"))


async def test_http_crm_unreachable_is_an_isolated_failure() -> None:
    crm = http_crm.create(
        msgspec.convert(
            {"url": "http://127.0.0.1:9/c?email={email}", "timeout_seconds": 0.5}, http_crm.Config
        )
    )
    with pytest.raises(RuntimeError, match="not started"):
        await crm.enrich_ticket(ticket=ticket())
    await crm.startup(app=None)
    try:
        with pytest.raises(httpx.HTTPError):
            await crm.enrich_ticket(ticket=ticket())
    finally:
        await crm.shutdown(app=None)
    assert crm.url_for("a+b@x.example") == "http://127.0.0.1:9/c?email=a%2Bb@x.example"

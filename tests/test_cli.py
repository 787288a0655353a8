"""The ``ticketcore`` command, run for real in a subprocess against a temporary TOML config:
migrate, users, tokens, plugins list/check, configuration errors, and ``serve --demo`` from
start to a clean stop on SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ticketcore.app import App
from ticketcore.testing import api_client

HelpdeskFactory = Callable[..., Awaitable[App]]


def cli_env() -> dict[str, str]:
    """The environment for the command, without a database URL override."""
    env = dict(os.environ)
    env.pop("TICKETCORE_DATABASE_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ticketcore.cli ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "ticketcore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=cli_env(),
    )


def write_config(path: Path, db_url: str, extra: str = "") -> Path:
    """A settings file for ``db_url``; ``extra`` is appended TOML (tables)."""
    storage = path.parent / "files"
    path.write_text(
        f"storage_dir = {json.dumps(str(storage))}\n\n"
        f"[database]\nurl = {json.dumps(db_url)}\n\n{extra}",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    """A settings file for this test's database (both engines)."""
    return write_config(tmp_path / "ticketcore.toml", db_url)


@pytest.fixture
def offline_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a settings file that is only loaded, never connected to."""

    def make(extra: str = "") -> Path:
        return write_config(tmp_path / "offline.toml", f"sqlite:///{tmp_path}/unused.db", extra)

    return make


def test_migrate_twice(config: Path) -> None:
    first = run_cli("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "applied 0001 initial schema" in first.stdout
    second = run_cli("migrate", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"


async def test_users_add_and_a_token_that_works_against_the_api(
    config: Path, helpdesk_factory: HelpdeskFactory
) -> None:
    assert run_cli("migrate", "-c", str(config)).returncode == 0
    added = run_cli(
        "users",
        "add",
        "-c",
        str(config),
        "--email",
        "Olga@Example.org",
        "--name",
        "Olga Ops",
        "--role",
        "admin",
        "--password",
        "long-enough-password",
    )
    assert added.returncode == 0, added.stderr
    user = json.loads(added.stdout)
    assert (user["email"], user["role"], user["name"]) == ("olga@example.org", "admin", "Olga Ops")

    again = run_cli(
        "users", "add", "-c", str(config), "--email", "olga@example.org", "--name", "X",
        "--role", "agent",
    )  # fmt: skip
    assert again.returncode == 1
    assert "olga@example.org" in again.stderr and "exists" in again.stderr

    no_team = run_cli(
        "users", "add", "-c", str(config), "--email", "a@example.org", "--name", "A",
        "--role", "agent", "--team", "nowhere",
    )  # fmt: skip
    assert no_team.returncode == 2
    assert "--team nowhere: no such team" in no_team.stderr

    issued = run_cli("tokens", "create", "-c", str(config), "--email", "olga@example.org")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert re.fullmatch(r"tc_[A-Za-z0-9_-]{20,}", token), token

    unknown = run_cli("tokens", "create", "-c", str(config), "--email", "nobody@example.org")
    assert unknown.returncode == 1
    assert "nobody@example.org" in unknown.stderr

    app = await helpdesk_factory()
    async with api_client(app) as api:
        me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert (me.json()["id"], me.json()["role"]) == (user["id"], "admin")
        made = await api.post(
            "/api/v1/teams",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "Ops", "slug": "ops"},
        )
        assert made.status_code == 201, made.text
        forged = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}x"})
        assert forged.status_code == 401


def test_plugins_list_json(offline_config: Callable[[str], Path]) -> None:
    config = offline_config(
        '[plugins]\nrouting = ["rules"]\n\n'
        '[[plugin.routing.rules.rules]]\nname = "pay"\nteam = "billing"\nkeywords = ["invoice"]\n'
    )
    listed = run_cli("plugins", "list", "--json", "-c", str(config))
    assert listed.returncode == 0, listed.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    rules, round_robin = rows[("routing", "rules")], rows[("routing", "round_robin")]
    assert rules["enabled"] is True
    assert round_robin["enabled"] is False
    assert rules["distribution"] == round_robin["distribution"] == "ticketcore"
    assert rules["target"] == "ticketcore.plugins.routing.rules"
    assert rules["hooks"] == ["route_ticket"]
    assert rules["config"]["rules"][0]["name"] == "pay"
    assert round_robin["hooks"] is None  # not enabled, so never imported

    default = run_cli("plugins", "list", "--json", "-c", str(offline_config("")))
    assert default.returncode == 0, default.stderr
    assert all(not r["enabled"] for r in json.loads(default.stdout))

    table = run_cli("plugins", "list", "-c", str(config))
    assert table.returncode == 0, table.stderr
    assert "round_robin" in table.stdout and "rules" in table.stdout


def test_plugins_check_reports_every_problem(offline_config: Callable[[str], Path]) -> None:
    good = offline_config('[plugins]\nrouting = ["rules", "round_robin"]\n')
    ok = run_cli("plugins", "check", "-c", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "ok: 2 plugin(s)" in ok.stdout
    assert "routing.rules" in ok.stdout and "routing.round_robin" in ok.stdout

    bad = offline_config(
        '[plugins]\nrouting = ["rules", "teleporter", "round_robin"]\n\n'
        '[plugin.routing.round_robin]\ndefault_team = "support"\ncolour = "red"\n'
    )
    checked = run_cli("plugins", "check", "-c", str(bad))
    assert checked.returncode != 0
    assert "teleporter" in checked.stderr
    assert "not installed" in checked.stderr
    assert "colour" in checked.stderr
    assert "round_robin" in checked.stderr
    assert checked.stdout == ""
    assert "Traceback" not in checked.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    for args in (("migrate",), ("plugins", "check"), ("users", "add", "--email", "a@b.cd",
                 "--name", "A", "--role", "admin")):  # fmt: skip
        result = run_cli(*args, "--config", str(missing))
        assert result.returncode == 2, args
        assert f"{missing}: no such configuration file" in result.stderr
        assert "Traceback" not in result.stderr


def test_invalid_toml_and_unknown_settings_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[database\nurl = 1\n", encoding="utf-8")
    result = run_cli("migrate", "-c", str(broken))
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr
    unknown = write_config(tmp_path / "unknown.toml", "sqlite:///x.db", "[server]\nprot = 80\n")
    result = run_cli("plugins", "check", "-c", str(unknown))
    assert result.returncode == 2
    assert "prot" in result.stderr


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_toml() -> str:
    """The demo's plugin settings as TOML tables (JSON strings and arrays are valid TOML)."""
    from ticketcore.demo import DEMO_PLUGIN_SETTINGS, DEMO_PLUGINS

    lines = ["[plugins]", f"routing = {json.dumps(DEMO_PLUGINS['routing'])}", ""]
    routing = DEMO_PLUGIN_SETTINGS["routing"]
    lines += ["[plugin.routing.round_robin]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in routing["round_robin"].items()]
    for rule in routing["rules"]["rules"]:
        lines += ["", "[[plugin.routing.rules.rules]]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in rule.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def demo_server(
    tmp_path: Path, db_engine: str, db_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``ticketcore serve --demo`` in an empty folder; killed at teardown if still running.

    On SQLite it runs with no configuration at all (the out-of-the-box demo, a SQLite file
    in the working folder); on PostgreSQL with ``--config`` naming the test database and the
    demo's plugin settings.
    """
    port = free_port()
    args = [sys.executable, "-m", "ticketcore.cli", "serve", "--demo", "--port", str(port)]
    if db_engine != "sqlite":
        config = write_config(tmp_path / "demo.toml", db_url, demo_toml())
        args += ["--config", str(config)]
    out = tmp_path / "stdout.txt"
    with out.open("wb") as stdout, (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(args, cwd=tmp_path, stdout=stdout, stderr=stderr, env=cli_env())
    try:
        yield process, f"http://127.0.0.1:{port}", out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_until_healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Poll /healthz until it answers (fail with the output if the server dies or hangs)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server did not become healthy: {log.read_text()}")


def test_serve_demo_end_to_end(
    demo_server: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path, db_engine: str
) -> None:
    process, base, log = demo_server
    wait_until_healthy(process, base, log)
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "database": db_engine}
    printed = log.read_text()
    assert "seeded with demo data" in printed
    tokens = re.findall(r"API token: (tc_\S+)", printed)
    assert len(tokens) == 2, printed
    admin, customer = ({"Authorization": f"Bearer {t}"} for t in tokens)

    everything = httpx.get(f"{base}/api/v1/tickets", headers=admin, timeout=10)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert len(items) == 5
    requesters = {t["requester"]["email"] for t in items}
    assert len(requesters) > 1

    own = httpx.get(f"{base}/api/v1/tickets", headers=customer, timeout=10)
    assert own.status_code == 200
    mine = own.json()["items"]
    assert mine and len(mine) < len(items)
    assert {t["requester"]["email"] for t in mine} == {"marie@client.test"}
    others = [t["id"] for t in items if t["requester"]["email"] != "marie@client.test"]
    hidden = httpx.get(f"{base}/api/v1/tickets/{others[0]}", headers=customer, timeout=10)
    assert hidden.status_code == 404
    payment = next(t for t in items if t["subject"] == "My payment failed twice")
    assert payment["assignee_id"] is not None  # the demo routing plugins ran
    assert (tmp_path / "ticketcore-demo.db").exists() == (db_engine == "sqlite")

    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("serve did not exit within 10 s of SIGINT (unclosed connections?)")
    stderr = (tmp_path / "stderr.txt").read_text()
    # uvicorn shuts down gracefully, then re-raises the interrupt: 130 is Ctrl-C's status.
    assert code in (0, 130), stderr
    assert "Application shutdown complete" in stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr

"""Databases to benchmark against, their seeding, and the real ``ticketcore serve`` process."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from ticketcore.app import create_helpdesk
from ticketcore.config import load_settings
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role

TEAMS = 4
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOG_PROBLEM_WORDS = ("Traceback", "ERROR", "Exception")


@dataclass
class Target:
    """One empty database (a SQLite file or a fresh PostgreSQL schema) and its config."""

    engine: str
    workdir: Path
    url: str
    config_path: Path
    pg_dsn: str | None = None
    schema: str | None = None
    team_ids: list[int] = field(default_factory=list)
    user_id: int = 0
    token: str = ""

    @property
    def sqlite_path(self) -> Path:
        """The database file (SQLite targets only)."""
        return self.workdir / "bench.db"


def _write_config(workdir: Path, url: str) -> Path:
    """A TOML config: top-level keys first, then the tables."""
    path = workdir / "bench.toml"
    path.write_text(
        f'storage_dir = "{workdir / "files"}"\n\n'
        f'[database]\nurl = "{url}"\n\n'
        "[server]\nembedded_worker = false\n",
        encoding="utf-8",
    )
    return path


async def _pg_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_target(engine: str, workdir: Path, pg_dsn: str) -> Target:
    """A new empty database of ``engine`` under ``workdir`` (or a new PostgreSQL schema)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if engine == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        return Target(engine, workdir, url, _write_config(workdir, url))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    await _pg_execute(pg_dsn, f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_dsn else "?"
    url = f"{pg_dsn}{sep}search_path={schema}"
    return Target(engine, workdir, url, _write_config(workdir, url), pg_dsn, schema)


async def drop_target(target: Target) -> None:
    """Remove the database: the SQLite files, or the PostgreSQL schema (CASCADE)."""
    if target.engine == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target.sqlite_path}{suffix}").unlink(missing_ok=True)
        return
    assert target.pg_dsn and target.schema
    await _pg_execute(target.pg_dsn, f"DROP SCHEMA IF EXISTS {target.schema} CASCADE")


async def seed_target(target: Target) -> None:
    """Migrate and add the bench teams, one agent in all of them and its API token,
    in-process through the Python API (before the server starts)."""
    app = create_helpdesk(load_settings(target.config_path))
    await app.start()
    try:
        target.team_ids = [
            await app.directory.create_team(f"Bench {k}", f"bench-{k}") for k in range(TEAMS)
        ]
        user = await app.auth.create_user(
            NewUser(
                email="agent@bench.test",
                name="Agent",
                role=Role.AGENT,
                team_ids=list(target.team_ids),
            )
        )
        target.user_id = user.id
        target.token = await app.auth.create_token(user.id, "bench")
    finally:
        await app.stop()


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m ticketcore.cli serve`` for one target, logging to a file."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = target.workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process else None

    async def start(self) -> None:
        """Start the server and wait until GET /healthz answers 200."""
        command = [
            sys.executable,
            "-m",
            "ticketcore.cli",
            "serve",
            "--config",
            str(self.target.config_path),
            "--port",
            str(self.port),
            "--no-worker",
            "--log-level",
            "warning",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.target.workdir
            )
        await self._wait_healthy()

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:  # bounded by START_TIMEOUT_S
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not healthy after {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL after a timeout; return the exit status."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_problems(self) -> dict[str, int]:
        """Errors the server logged: exception (with project frames) -> count."""
        if not self.log_path.exists():
            return {}
        return summarise_log(self.log_path.read_text(errors="replace").splitlines())


_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')


def _exception_of(lines: list[str], start: int) -> tuple[str, list[str], int]:
    """From a ``Traceback`` line: (exception line, project frames, index after)."""
    frames: list[str] = []
    index = start + 1
    while index < len(lines) and (not lines[index] or lines[index][0].isspace()):
        match = _FRAME.search(lines[index])
        if match and "site-packages" not in match["path"]:
            path = "/".join(Path(match["path"]).parts[-2:])
            frames.append(f"{path}:{match['line']} {match['func']}")
        index += 1
    exception = lines[index].strip() if index < len(lines) else "(truncated traceback)"
    return exception, frames, index + 1


def summarise_log(lines: list[str]) -> dict[str, int]:
    """Count the distinct exceptions (and error lines without one) in a server log."""
    counts: dict[str, int] = {}
    index = 0
    while index < len(lines):  # bounded: index grows on every pass
        line = lines[index]
        if line.startswith("Traceback"):
            exception, frames, index = _exception_of(lines, index)
            key = f"{exception} [at {' > '.join(frames[-4:])}]" if frames else exception
            counts[key] = counts.get(key, 0) + 1
            continue
        if any(word in line for word in LOG_PROBLEM_WORDS) and not line.startswith("ERROR - "):
            counts[line.strip()] = counts.get(line.strip(), 0) + 1
        index += 1
    return counts


async def check_postgres(dsn: str) -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        await _pg_execute(dsn, "SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None

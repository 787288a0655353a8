"""The ``ticketcore`` command: serve, worker, migrate, plugins, users, tokens."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from ticketcore.app import App, create_helpdesk
from ticketcore.config import Settings, load_settings, settings_from_mapping
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.errors import ConfigError, TicketCoreError
from ticketcore.plugin_manager import build_plugin_manager, installed_plugins

DEMO_DATABASE = "sqlite:///ticketcore-demo.db"
#: sysexits.h: a temporary failure; an MTA piping mail to us retries later.
EX_TEMPFAIL = 75


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "demo", False) and not args.config:
        from ticketcore.demo import DEMO_PLUGIN_SETTINGS, DEMO_PLUGINS

        return settings_from_mapping(
            {
                "database": {"url": DEMO_DATABASE},
                "plugins": DEMO_PLUGINS,
                "plugin": DEMO_PLUGIN_SETTINGS,
                "storage_dir": "ticketcore-demo-files",
                # The demo serves plain HTTP on this machine: cookies cannot be Secure-only.
                "web": {"secure_cookies": False},
            }
        )
    return load_settings(args.config)


async def _with_app(settings: Settings, work: Callable[[App], Awaitable[int]]) -> int:
    app = create_helpdesk(settings)
    await app.start()
    try:
        return await work(app)
    finally:
        await app.stop()


# --- commands -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrate, start the embedded worker and serve HTTP until interrupted."""
    import uvicorn

    from ticketcore.web import create_app

    settings = _settings(args)
    host = args.host or settings.server.host
    port = args.port or settings.server.port

    async def run() -> int:
        app = create_helpdesk(settings)
        app.listeners = True
        await app.start()
        base = f"http://{host}:{port}"
        if args.demo:
            from ticketcore.demo import seed_demo

            logins = await seed_demo(app)
            _print_demo(base, settings, logins)
        web = create_app(app, run_worker=False if args.no_worker else None)
        config = uvicorn.Config(
            web,
            host=host,
            port=port,
            log_level=args.log_level,
            access_log=args.access_log,
            lifespan="on",
            # Open live-update streams (server-sent events) would otherwise hold shutdown.
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        print(f"TicketCore serving {base}  (API {base}/api/v1, health {base}/healthz)", flush=True)
        await server.serve()
        return 0

    return asyncio.run(run())


def _print_demo(base: str, settings: Settings, logins: Any) -> None:
    state = "seeded with demo data" if logins.seeded else "demo data already present"
    print(
        f"""
TicketCore demo ({state}; database {settings.database.url})
  Agent workspace:                {base}/agent
  Customer portal:                {base}/portal
  Admin pages:                    {base}/admin
  API docs (try requests there):  {base}/schema/swagger
  Health:                         {base}/healthz
  Admin:    {logins.admin_email} / {logins.admin_password}
            API token: {logins.admin_token}
  Agent:    {logins.agent_email} / {logins.agent_password}
  Customer: {logins.customer_email} / {logins.customer_password}
            API token: {logins.customer_token}
  Try:      curl -H 'Authorization: Bearer {logins.admin_token}' {base}/api/v1/tickets
""",
        flush=True,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a job worker (outbox, timers) until interrupted; several may share a database."""
    settings = _settings(args)

    async def work(app: App) -> int:
        if args.once:
            ran = await app.jobs.drain()
            print(f"ran {ran} job(s)")
            return 0
        print(f"worker {app.jobs.worker_id} running", flush=True)
        await app.jobs.work(poll_interval=args.poll)
        return 0

    return asyncio.run(_with_app(settings, work))


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and create plugin tables."""
    from ticketcore.db.migrations import migrate

    settings = _settings(args)

    async def run() -> int:
        app = create_helpdesk(settings)
        await app.db.start()
        try:
            applied = await migrate(app.db, app.plugin_tables)
        finally:
            await app.db.close()
        print("\n".join(f"applied {name}" for name in applied) or "database is up to date")
        return 0

    return asyncio.run(run())


def cmd_plugins_list(args: argparse.Namespace) -> int:
    """Installed plugins (from metadata, never imported) and which are enabled: the settings
    file with the changes admins made on the plugins page (stored in the database)."""
    from ticketcore.plugin_overrides import load_effective_settings

    settings = asyncio.run(load_effective_settings(_settings(args)))
    enabled = {(k, n) for k, n in settings.plugins.enabled()}
    _, loaded = build_plugin_manager(settings)
    by_key = {(p.kind, p.name): p for p in loaded}
    rows: list[dict[str, Any]] = []  # inferred as dict[str, object], which rich refuses
    for inst in installed_plugins():
        plugin = by_key.get((inst.kind, inst.name))
        rows.append(
            {
                "kind": inst.kind,
                "name": inst.name,
                "enabled": (inst.kind, inst.name) in enabled,
                "distribution": inst.distribution,
                "version": inst.version,
                "target": inst.target,
                "description": plugin.description if plugin else None,
                "hooks": plugin.hooks if plugin else None,
                "config": plugin.raw_config if plugin else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="TicketCore plugins")
    for column in ("kind", "name", "enabled", "version", "distribution", "hooks"):
        table.add_column(column)
    for row in rows:
        hooks = ", ".join(row["hooks"]) if row["hooks"] is not None else "(not loaded)"
        table.add_row(
            row["kind"],
            row["name"],
            "yes" if row["enabled"] else "no",
            row["version"],
            row["distribution"],
            hooks,
        )
    Console(width=140).print(table)
    return 0


def cmd_plugins_check(args: argparse.Namespace) -> int:
    """Load and validate every enabled plugin; exit non-zero with every problem listed."""
    settings = _settings(args)
    _, loaded = build_plugin_manager(settings)
    print(
        f"ok: {len(loaded)} plugin(s) enabled and valid"
        + "".join(f"\n  {p.qualified_name} {p.version} ({', '.join(p.hooks)})" for p in loaded)
    )
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    """Create a user; agents may be put in teams by slug."""
    settings = _settings(args)

    async def work(app: App) -> int:
        teams = {t["slug"]: t["id"] for t in await app.directory.teams()}
        missing = [slug for slug in args.team if slug not in teams]
        if missing:
            raise ConfigError([f"--team {slug}: no such team" for slug in missing])
        user = await app.auth.create_user(
            NewUser(
                email=args.email,
                name=args.name,
                role=Role(args.role),
                password=args.password,
                team_ids=[teams[slug] for slug in args.team],
            )
        )
        print(json.dumps(msgspec.to_builtins(user)))
        return 0

    return asyncio.run(_with_app(settings, work))


def cmd_tokens_create(args: argparse.Namespace) -> int:
    """Issue an API token for a user (printed once)."""
    settings = _settings(args)

    async def work(app: App) -> int:
        user = await app.auth.user_by_email(args.email)
        print(await app.auth.create_token(user.id, args.name))
        return 0

    return asyncio.run(_with_app(settings, work))


def cmd_mail_ingest(args: argparse.Namespace) -> int:
    """Feed a mail file, a Maildir, an mbox or a folder of mails to the e-mail channel."""
    from pathlib import Path

    from ticketcore.plugins.channels.email import channel_of
    from ticketcore.plugins.channels.email.sources import MailSourceError, ingest_path

    settings = _settings(args)
    path = Path(args.path)
    if args.path != "-" and not path.exists():
        print(f"ticketcore: {path}: no such file or directory", file=sys.stderr)
        return 2

    async def work(app: App) -> int:
        channel = channel_of(app)
        outcomes: dict[str, int] = {}
        if args.path == "-":
            # An MTA pipe: exit 75 (EX_TEMPFAIL) on failure so the MTA keeps the mail and
            # retries, as with an SMTP 451.
            try:
                result = await channel.ingest(sys.stdin.buffer.read(), source="stdin")
            except Exception as exc:
                print(f"ticketcore: mail not stored, retry later: {exc}", file=sys.stderr)
                return EX_TEMPFAIL
            await app.jobs.drain()
            print(json.dumps({"outcomes": {result.outcome: 1}, "ticket_id": result.ticket_id}))
            return 0

        async def ingest(raw: bytes, *, source: str) -> object:
            result = await channel.ingest(raw, source=source)
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            return result

        try:
            report = await ingest_path(path, ingest)
        except MailSourceError as exc:
            print(f"ticketcore: {exc}", file=sys.stderr)
            return 2
        # Acknowledgements and other side effects are queued; deliver them now.
        await app.jobs.drain()
        summary = {
            "outcomes": outcomes,
            "failed": [msgspec.to_builtins(f) for f in report.failures],
            "skipped": [msgspec.to_builtins(f) for f in report.skipped],
        }
        print(json.dumps(summary))
        return 1 if report.failed else 0

    return asyncio.run(_with_app(settings, work))


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ticketcore`` command."""
    parser = argparse.ArgumentParser(prog="ticketcore", description="TicketCore helpdesk framework")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config",
            "-c",
            help="settings file (TOML); default: built-in defaults and TICKETCORE_DATABASE_URL",
        )
        p.set_defaults(func=func)
        return p

    serve = command("serve", cmd_serve, "serve the helpdesk over HTTP (migrates first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed demo data (SQLite file ticketcore-demo.db unless --config)",
    )
    serve.add_argument(
        "--no-worker", action="store_true", help="do not run the embedded job worker"
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true")

    worker = command("worker", cmd_worker, "run a background job worker")
    worker.add_argument("--once", action="store_true", help="run due jobs, then exit")
    worker.add_argument("--poll", type=float, default=1.0, help="seconds between polls")

    command("migrate", cmd_migrate, "apply database migrations")

    plugins = sub.add_parser("plugins", help="list and check plugins")
    plugins_sub = plugins.add_subparsers(dest="plugins_command", required=True)
    listing = command("list", cmd_plugins_list, "installed and enabled plugins", plugins_sub)
    listing.add_argument("--json", action="store_true")
    command("check", cmd_plugins_check, "validate the enabled plugins", plugins_sub)

    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = command("add", cmd_users_add, "create a user", users_sub)
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password")
    add.add_argument("--team", action="append", default=[], help="team slug (repeatable)")

    tokens = sub.add_parser("tokens", help="manage API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = command("create", cmd_tokens_create, "issue an API token", tokens_sub)
    create.add_argument("--email", required=True)
    create.add_argument("--name", default="cli")

    mail = sub.add_parser("mail", help="e-mail channel tools")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True)
    ingest = command(
        "ingest",
        cmd_mail_ingest,
        "ingest a mail file, Maildir, mbox or folder (as an MTA pipe or a migration would)",
        mail_sub,
    )
    ingest.add_argument(
        "path", help="a .eml file, a Maildir, an mbox file, a folder, or - for one mail on stdin"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"ticketcore: {exc.message}", file=sys.stderr)
        return 2
    except TicketCoreError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"ticketcore: {exc.message}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

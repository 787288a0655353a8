"""Versioned schema migrations, applied in order, once each.

On PostgreSQL the whole run holds an advisory lock inside one transaction, so several
processes starting at once migrate exactly once (the others wait, then find nothing to do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from piccolo.table import Table

from ticketcore.db.automation_tables import AUTOMATION_TABLES
from ticketcore.db.database import Database
from ticketcore.db.load_triggers import (
    AGENT_LOAD_TABLE,
    ASSIGNMENTS_COLUMN,
    BACKFILL,
    load_trigger_ddl,
)
from ticketcore.db.notification_tables import NOTIFICATION_INDEXES, NOTIFICATION_TABLES
from ticketcore.db.portal_tables import PORTAL_INDEXES, PORTAL_TABLES
from ticketcore.db.roster_triggers import roster_trigger_ddl
from ticketcore.db.search_index import create_subject_search_index
from ticketcore.db.tables import CORE_TABLES, AgentSkill, Macro, SchemaVersion

Migration = Callable[[Database], Awaitable[None]]
_ADVISORY_LOCK_KEY = 7_277_001

_INITIAL_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_ticket_status_id ON ticket (status, id)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_team_status_id ON ticket (team, status, id)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_assignee_status_id ON ticket (assignee, status, id)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_priority_id ON ticket (priority, id)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_requester_id ON ticket (requester, id)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_category_id ON ticket (category, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_ticket_tag ON ticket_tag (tag, ticket)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_tag_ticket ON ticket_tag (ticket)",
    "CREATE INDEX IF NOT EXISTS ix_ticket_link_ticket ON ticket_link (ticket)",
    "CREATE INDEX IF NOT EXISTS ix_entry_ticket_id ON entry (ticket, id)",
    "CREATE INDEX IF NOT EXISTS ix_attachment_entry ON attachment (entry)",
    "CREATE INDEX IF NOT EXISTS ix_event_ticket_id ON ticket_event (ticket, id)",
    "CREATE INDEX IF NOT EXISTS ix_job_due ON job (status, run_at)",
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_team_member ON team_member (team, "user")',
    'CREATE INDEX IF NOT EXISTS ix_team_member_user ON team_member ("user")',
    "CREATE INDEX IF NOT EXISTS ix_contact_org ON contact (organisation)",
)


async def create_tables(db: Database, tables: Sequence[type[Table]]) -> None:
    """Create tables (and their single-column indexes) that do not exist yet."""
    for table in tables:
        # piccolo renders DDL for the engine a table class is bound to, and that binding is
        # process-global: another App created meanwhile (tests, a second helpdesk) may have
        # re-bound it to its own engine. Re-bind and render without awaiting in between, so
        # the statements are always this database's dialect.
        db.bind([table])
        statements = [*table.create_table(if_not_exists=True).ddl]
        for column in table._meta.columns:
            if column._meta.index:
                statements += table.create_index([column], if_not_exists=True).ddl
        for ddl in statements:
            await db.execute_ddl(ddl)


async def _m0001_initial(db: Database) -> None:
    await create_tables(db, CORE_TABLES)
    for ddl in _INITIAL_INDEXES:
        await db.execute_ddl(ddl)


async def _columns(db: Database, table: str) -> set[str]:
    """Names of the columns ``table`` has now."""
    if db.is_sqlite:
        rows = await db.fetch(f"SELECT name FROM pragma_table_info('{table}')")
    else:
        rows = await db.fetch(
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = {}",
            table,
        )
    return {row["name"] for row in rows}


async def _m0002_routing(db: Database) -> None:
    """Agent availability (online/away/offline) and skills with levels, for routing.

    0001 creates tables from the current table classes, so a database created after this
    migration was written already has ``app_user.availability``: add it only when missing.
    An agent switched off (``available`` false) starts offline.
    """
    if "availability" not in await _columns(db, "app_user"):
        await db.execute_ddl(
            "ALTER TABLE app_user ADD COLUMN availability VARCHAR(10) NOT NULL DEFAULT 'online'"
        )
        await db.fetch("UPDATE app_user SET availability = 'offline' WHERE available = {}", False)
    await create_tables(db, [AgentSkill])
    await db.execute_ddl(
        'CREATE UNIQUE INDEX IF NOT EXISTS ux_agent_skill ON agent_skill ("user", skill)'
    )


async def _m0003_working_hours(db: Database) -> None:
    """Agents' working hours (JSON, null: always on shift); added only when missing, as
    in 0002."""
    if "working_hours" not in await _columns(db, "app_user"):
        await db.execute_ddl("ALTER TABLE app_user ADD COLUMN working_hours JSON")


async def _m0004_macros(db: Database) -> None:
    """Macros (canned responses)."""
    await create_tables(db, [Macro])


async def _m0005_unique_message_ids(db: Database) -> None:
    """One entry per Message-ID: a mail delivered twice (an SMTP retry, two MX paths, an IMAP
    refetch) can never become two messages, even when both deliveries race."""
    await db.execute_ddl("DROP INDEX IF EXISTS entry_message_id")
    await db.execute_ddl(
        "CREATE UNIQUE INDEX IF NOT EXISTS entry_message_id_unique ON entry (message_id)"
    )


#: Columns of the SLA state (0006), with their DDL types.
_SLA_COLUMNS = (
    ("sla_policy", "VARCHAR(100)"),
    ("first_response_due_at", "TIMESTAMPTZ"),
    ("next_response_due_at", "TIMESTAMPTZ"),
    ("resolution_due_at", "TIMESTAMPTZ"),
    ("sla_paused_at", "TIMESTAMPTZ"),
    ("sla_pauses", "JSON NOT NULL DEFAULT '[]'"),
    ("sla_reply_since", "TIMESTAMPTZ"),
    ("sla_due_at", "TIMESTAMPTZ"),
    ("sla_next_check_at", "TIMESTAMPTZ"),
    ("sla_timers", "JSON NOT NULL DEFAULT '[]'"),
    ("sla_fired", "JSON NOT NULL DEFAULT '[]'"),
    ("sla_locked_by", "VARCHAR(100)"),
    ("sla_locked_until", "TIMESTAMPTZ"),
)
_SLA_INDEXES = (
    # Partial: only tickets with a running clock are in them, so both stay small, and
    # "the N nearest to breach" / "the timers due now" are index range scans.
    "CREATE INDEX IF NOT EXISTS ix_ticket_sla_due ON ticket (sla_due_at) "
    "WHERE sla_due_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS ix_ticket_sla_check ON ticket (sla_next_check_at) "
    "WHERE sla_next_check_at IS NOT NULL",
)


async def _m0006_sla(db: Database) -> None:
    """SLA state on the ticket: due times, pauses, timers with a lease; added only when
    missing, as in 0002."""
    existing = await _columns(db, "ticket")
    for name, ddl_type in _SLA_COLUMNS:
        if name not in existing:
            await db.execute_ddl(f"ALTER TABLE ticket ADD COLUMN {name} {ddl_type}")
    for ddl in _SLA_INDEXES:
        await db.execute_ddl(ddl)


async def _m0007_automation(db: Database) -> None:
    """Automation rules, the record of which rule fired for which event (unique), and the
    routing roster's version."""
    await create_tables(db, AUTOMATION_TABLES)
    await db.execute_ddl(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_automation_fired ON automation_fired (rule, event)"
    )
    await db.execute_ddl(
        "CREATE INDEX IF NOT EXISTS ix_automation_rule_position ON automation_rule (position, id)"
    )
    # The routing roster's version, bumped by triggers on agents, teams and skills: lets
    # each process keep its routing snapshot until something in it changes.
    for ddl in roster_trigger_ddl(db.is_sqlite):
        await db.execute_ddl(ddl)


async def _m0008_notifications(db: Database) -> None:
    """Agents' in-app notifications, organisations' customer-update preferences and the
    notifiers' delivery log."""
    await create_tables(db, NOTIFICATION_TABLES)
    for ddl in NOTIFICATION_INDEXES:
        await db.execute_ddl(ddl)


async def _m0009_subject_search(db: Database) -> None:
    """An index for the text filter of the ticket list (trigrams of the subject)."""
    await create_subject_search_index(db)


async def _m0010_portal(db: Database) -> None:
    """Customers' satisfaction ratings and e-mailed sign-in links; agents' presence on
    tickets and saved filters."""
    await create_tables(db, PORTAL_TABLES)
    for ddl in PORTAL_INDEXES:
        await db.execute_ddl(ddl)


async def _m0011_plugin_overrides(db: Database) -> None:
    """Admins' plugin changes (enabled, settings) over the settings file, and their version."""
    from ticketcore.plugin_overrides import OVERRIDE_DDL

    for ddl in OVERRIDE_DDL:
        await db.execute_ddl(ddl)


async def _m0012_categories(db: Database) -> None:
    """Ticket categories managed by admins (slug, name, labels, active, order)."""
    from ticketcore.db.category_tables import Category

    await create_tables(db, [Category])


async def _m0013_agent_load(db: Database) -> None:
    """Routing's per-ticket read kept by triggers: open tickets per agent (``agent_load``)
    and the sum of assignment counts (``routing_roster_version.assignments``), backfilled
    from the current tickets and team members (see ``ticketcore.db.load_triggers``)."""
    await db.execute_ddl(AGENT_LOAD_TABLE)
    if "assignments" not in await _columns(db, "routing_roster_version"):
        await db.execute_ddl(f"ALTER TABLE routing_roster_version ADD COLUMN {ASSIGNMENTS_COLUMN}")
    # Triggers first: on PostgreSQL creating them locks ticket and team_member against
    # writes until this transaction commits, so no change slips between count and trigger.
    for ddl in load_trigger_ddl(db.is_sqlite):
        await db.execute_ddl(ddl)
    for statement in BACKFILL:
        await db.fetch(statement)


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "initial schema", _m0001_initial),
    (2, "agent availability and skills", _m0002_routing),
    (3, "agent working hours", _m0003_working_hours),
    (4, "macros", _m0004_macros),
    (5, "unique message ids", _m0005_unique_message_ids),
    (6, "SLA state on tickets", _m0006_sla),
    (7, "automation rules", _m0007_automation),
    (8, "agent notifications, customer-update preferences, delivery log", _m0008_notifications),
    (9, "subject search index", _m0009_subject_search),
    (10, "satisfaction, sign-in links, presence, saved filters", _m0010_portal),
    (11, "plugin overrides", _m0011_plugin_overrides),
    (12, "ticket categories", _m0012_categories),
    (13, "open tickets per agent and assignment sum kept by triggers", _m0013_agent_load),
]


async def migrate(db: Database, extra_tables: Sequence[type[Table]] = ()) -> list[str]:
    """Apply pending migrations, then create plugin tables; return the names applied."""
    applied: list[str] = []
    async with db.transaction():
        if not db.is_sqlite:
            await db.fetch("SELECT pg_advisory_xact_lock({})", _ADVISORY_LOCK_KEY)
        await create_tables(db, [SchemaVersion])
        # Raw SQL on ``db``, not SchemaVersion.select()/insert(): those run on whatever engine
        # the (global) table class is bound to, which may be another App's, outside this
        # transaction: two helpdesks starting at once then failed with "schema_version does
        # not exist" or recorded the migration in the wrong database.
        done = {row["version"] for row in await db.fetch("SELECT version FROM schema_version")}
        for version, name, migration in MIGRATIONS:
            if version in done:
                continue
            await migration(db)
            await db.fetch(
                "INSERT INTO schema_version (version, name, applied_at) VALUES ({}, {}, {})",
                version,
                name,
                datetime.now(UTC),
            )
            applied.append(f"{version:04d} {name}")
        if extra_tables:
            await create_tables(db, extra_tables)
    return applied

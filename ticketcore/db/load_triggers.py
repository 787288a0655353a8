"""Routing's per-ticket read, kept by triggers (migration 0013): each agent's open tickets
(``agent_load``) and the sum of the team members' assignment counts
(``routing_roster_version.assignments``).

Routing reads both for every batch of new tickets (``ticketcore.services.routing_roster``).
Computed there, they cost a ``GROUP BY`` over every open assigned ticket (it grows with
the backlog: fine at 500 open tickets, not at 100,000) and a ``SUM`` over every team member
(0.14 ms at 1,000 agents). Kept here by database triggers, whoever writes (every service,
raw SQL, a foreign key's ``SET NULL``), so the read costs one row per agent with open
tickets plus one, whatever the number of tickets.

- ``agent_load``: a row per agent ever counted (rows that fall to 0 are kept, readers
  skip them). A ticket counts for its assignee while it is assigned and open
  (:data:`~ticketcore.db.tables.OPEN_TICKET_SQL`). The triggers act only when the agent a
  ticket counts for changes: on PostgreSQL their ``WHEN`` clause spares the function call on
  the usual update (neither status nor assignee, or a move between two open statuses); on
  SQLite the update trigger only fires for an ``UPDATE OF assignee, status`` and its
  ``WHEN`` does the same. A reassignment touches the two agents' rows in the order of their
  ids, so two opposite reassignments cannot deadlock each other.
- ``routing_roster_version.assignments``: the sum of ``team_member.assigned_count``; each
  change of a count (assignment), member added or removed adds its difference. Assignments
  are serialised by the routing lock already, so the one hot row costs routing no extra wait.
"""

from __future__ import annotations

from ticketcore.db.tables import OPEN_TICKET_SQL

#: The per-agent table (``"user"``: the assignee's ``app_user`` id).
AGENT_LOAD_TABLE = (
    'CREATE TABLE IF NOT EXISTS agent_load ("user" BIGINT PRIMARY KEY, '
    "open_tickets INTEGER NOT NULL)"
)
#: The column with the assignment sum, on the roster version's row (id 1).
ASSIGNMENTS_COLUMN = "assignments BIGINT NOT NULL DEFAULT 0"
#: Recount both from the tables (the migration's backfill, after the triggers exist: on
#: PostgreSQL creating them locks out concurrent writes until the migration commits).
BACKFILL = (
    "DELETE FROM agent_load",
    'INSERT INTO agent_load ("user", open_tickets) SELECT assignee, COUNT(*) FROM ticket '
    f"WHERE assignee IS NOT NULL AND {OPEN_TICKET_SQL} GROUP BY assignee",
    "UPDATE routing_roster_version SET assignments = "
    "(SELECT COALESCE(SUM(assigned_count), 0) FROM team_member) WHERE id = 1",
)
#: Trigger names, per dialect (for tests that rebuild an older schema).
SQLITE_TRIGGERS = (
    "agent_load_ticket_ins",
    "agent_load_ticket_del",
    "agent_load_ticket_upd",
    "routing_assignments_ins",
    "routing_assignments_del",
    "routing_assignments_upd",
)
POSTGRES_TRIGGERS = (
    ("agent_load_ticket_ins", "ticket"),
    ("agent_load_ticket_del", "ticket"),
    ("agent_load_ticket_upd", "ticket"),
    ("routing_assignments_upd", "team_member"),
    ("routing_assignments_insdel", "team_member"),
)
POSTGRES_FUNCTIONS = ("agent_load_track", "routing_assignments_track")


# OPEN_TICKET_SQL is "status IN (...)": prefixed with NEW. or OLD. it tests a trigger's row.
assert OPEN_TICKET_SQL.startswith("status IN (")


def _open(row: str) -> str:
    """The condition "``row`` (NEW or OLD) counts for its assignee"."""
    return f"{row}.assignee IS NOT NULL AND {row}.{OPEN_TICKET_SQL}"


def _counted(row: str) -> str:
    """The agent ``row`` (NEW or OLD) counts for: its assignee while open, else NULL."""
    return f"(CASE WHEN {row}.{OPEN_TICKET_SQL} THEN {row}.assignee END)"


def _add(agent: str) -> str:
    return (
        f'INSERT INTO agent_load ("user", open_tickets) VALUES ({agent}, 1) '
        'ON CONFLICT ("user") DO UPDATE SET open_tickets = agent_load.open_tickets + 1'
    )


def _remove(agent: str) -> str:
    return f'UPDATE agent_load SET open_tickets = open_tickets - 1 WHERE "user" = {agent}'


def _bump(change: str) -> str:
    """Add ``change`` (``+ x`` or ``- x``) to the assignment sum."""
    return f"UPDATE routing_roster_version SET assignments = assignments {change} WHERE id = 1"


def load_trigger_ddl(is_sqlite: bool) -> list[str]:
    """The statements creating the triggers (the table and the column come first, see
    migration 0013; the backfill, :data:`BACKFILL`, after)."""
    if is_sqlite:
        # SQLite has no IF in triggers: the conditions go into each statement's WHERE (an
        # ``INSERT ... SELECT ... WHERE`` for the upsert; SQLite >= 3.24 takes it there).
        upsert = _add("NEW.assignee").replace(
            "VALUES (NEW.assignee, 1)", f"SELECT NEW.assignee, 1 WHERE {_open('NEW')}"
        )
        remove = f"{_remove('OLD.assignee')} AND {_open('OLD')}"
        return [
            f"CREATE TRIGGER IF NOT EXISTS agent_load_ticket_ins AFTER INSERT ON ticket "
            f"WHEN {_open('NEW')} BEGIN {_add('NEW.assignee')}; END",
            f"CREATE TRIGGER IF NOT EXISTS agent_load_ticket_del AFTER DELETE ON ticket "
            f"WHEN {_open('OLD')} BEGIN {_remove('OLD.assignee')}; END",
            "CREATE TRIGGER IF NOT EXISTS agent_load_ticket_upd AFTER UPDATE OF assignee, "
            f"status ON ticket WHEN {_counted('OLD')} IS NOT {_counted('NEW')} "
            f"BEGIN {remove}; {upsert}; END",
            "CREATE TRIGGER IF NOT EXISTS routing_assignments_ins AFTER INSERT ON team_member "
            f"WHEN NEW.assigned_count <> 0 BEGIN {_bump('+ NEW.assigned_count')}; END",
            "CREATE TRIGGER IF NOT EXISTS routing_assignments_del AFTER DELETE ON team_member "
            f"WHEN OLD.assigned_count <> 0 BEGIN {_bump('- OLD.assigned_count')}; END",
            "CREATE TRIGGER IF NOT EXISTS routing_assignments_upd AFTER UPDATE OF "
            "assigned_count ON team_member WHEN NEW.assigned_count IS NOT OLD.assigned_count "
            f"BEGIN {_bump('+ (NEW.assigned_count - OLD.assigned_count)')}; END",
        ]
    # One function for the three events: OLD is only read on UPDATE and DELETE, NEW on
    # INSERT and UPDATE. A reassignment (both set) touches the lower id's row first.
    track = (
        "CREATE OR REPLACE FUNCTION agent_load_track() RETURNS trigger AS $$ "
        "DECLARE old_agent BIGINT; new_agent BIGINT; BEGIN "
        f"IF TG_OP <> 'INSERT' THEN old_agent := {_counted('OLD')}; END IF; "
        f"IF TG_OP <> 'DELETE' THEN new_agent := {_counted('NEW')}; END IF; "
        "IF old_agent IS NOT NULL AND new_agent IS NOT NULL AND new_agent < old_agent THEN "
        f"{_add('new_agent')}; {_remove('old_agent')}; "
        "ELSE "
        f"IF old_agent IS NOT NULL THEN {_remove('old_agent')}; END IF; "
        f"IF new_agent IS NOT NULL THEN {_add('new_agent')}; END IF; "
        "END IF; RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    assignments = (
        "CREATE OR REPLACE FUNCTION routing_assignments_track() RETURNS trigger AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {_bump('+ NEW.assigned_count')}; "
        f"ELSIF TG_OP = 'DELETE' THEN {_bump('- OLD.assigned_count')}; "
        f"ELSE {_bump('+ (NEW.assigned_count - OLD.assigned_count)')}; "
        "END IF; RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    row = "FOR EACH ROW"
    return [
        track,
        assignments,
        f"CREATE OR REPLACE TRIGGER agent_load_ticket_ins AFTER INSERT ON ticket {row} "
        f"WHEN ({_open('NEW')}) EXECUTE FUNCTION agent_load_track()",
        f"CREATE OR REPLACE TRIGGER agent_load_ticket_del AFTER DELETE ON ticket {row} "
        f"WHEN ({_open('OLD')}) EXECUTE FUNCTION agent_load_track()",
        "CREATE OR REPLACE TRIGGER agent_load_ticket_upd AFTER UPDATE OF assignee, status "
        f"ON ticket {row} WHEN ({_counted('OLD')} IS DISTINCT FROM {_counted('NEW')}) "
        "EXECUTE FUNCTION agent_load_track()",
        "CREATE OR REPLACE TRIGGER routing_assignments_upd AFTER UPDATE OF assigned_count "
        f"ON team_member {row} WHEN (NEW.assigned_count IS DISTINCT FROM OLD.assigned_count) "
        "EXECUTE FUNCTION routing_assignments_track()",
        "CREATE OR REPLACE TRIGGER routing_assignments_insdel AFTER INSERT OR DELETE "
        f"ON team_member {row} EXECUTE FUNCTION routing_assignments_track()",
    ]

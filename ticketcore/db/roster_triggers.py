"""The routing roster's version (migration 0007): a one-row counter that database triggers
bump whenever agents, team memberships, skills or teams change, whoever changes them (raw
SQL included). Routing compares it to decide whether its cached snapshot still holds (see
``ticketcore.services.routing_roster``)."""

from __future__ import annotations

#: Migration 0007's DDL for the roster version, per dialect.
ROSTER_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS routing_roster_version "
    "(id INTEGER PRIMARY KEY, version BIGINT NOT NULL)"
)
#: (table, columns whose update changes the roster, or None for any update). Agents,
#: skills and teams change rarely: any update counts (and no trigger depends on a column,
#: so later migrations may still alter them). Team members are updated on every assignment
#: (the round-robin stamp): only a change of team or user counts there.
ROSTER_SOURCES: tuple[tuple[str, str | None], ...] = (
    ("app_user", None),
    ("team_member", 'team, "user"'),
    ("agent_skill", None),
    ("team", None),
)
_BUMP = "UPDATE routing_roster_version SET version = version + 1 WHERE id = 1"


def roster_trigger_ddl(is_sqlite: bool) -> list[str]:
    """The statements creating the version row and the triggers that bump it."""
    statements = [
        ROSTER_VERSION_TABLE,
        "INSERT INTO routing_roster_version (id, version) VALUES (1, 0) "
        "ON CONFLICT (id) DO NOTHING",
    ]
    if is_sqlite:
        for table, columns in ROSTER_SOURCES:
            update = f"UPDATE OF {columns}" if columns else "UPDATE"
            for name, event in (("ins", "INSERT"), ("del", "DELETE"), ("upd", update)):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS routing_roster_{table}_{name} AFTER {event} "
                    f"ON {table} BEGIN {_BUMP}; END"
                )
        return statements
    statements.append(
        "CREATE OR REPLACE FUNCTION routing_roster_bump() RETURNS trigger AS $$ BEGIN "
        f"{_BUMP}; RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    for table, columns in ROSTER_SOURCES:
        update = f"UPDATE OF {columns}" if columns else "UPDATE"
        statements.append(
            f"CREATE OR REPLACE TRIGGER routing_roster_{table} AFTER INSERT OR DELETE OR "
            f"{update} ON {table} FOR EACH STATEMENT EXECUTE FUNCTION routing_roster_bump()"
        )
    return statements

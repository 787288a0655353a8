"""Admins' changes to the plugin configuration, stored in the database (migration 0011).

The settings file stays the base; each row of ``plugin_override`` changes one plugin:
``enabled`` (NULL: as in the file) and ``settings`` (JSON merged key by key over the file's
``[plugin.<kind>.<name>]`` table; NULL: as in the file). Every change bumps the single
counter of ``plugin_override_version`` in the same transaction, so a process learns that
something changed by reading one integer.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from ticketcore.config import NAMESPACES, PluginSelection, Settings, resolve_env_references
from ticketcore.db.database import Database, parse_database_url
from ticketcore.errors import ConfigError

#: Migration 0011: the overrides and their version counter (one row, id 1).
OVERRIDE_DDL = (
    "CREATE TABLE IF NOT EXISTS plugin_override ("
    "kind VARCHAR(40) NOT NULL, name VARCHAR(200) NOT NULL, enabled BOOLEAN NULL, "
    "settings TEXT NULL, version BIGINT NOT NULL, updated_at VARCHAR(40) NOT NULL, "
    "updated_by BIGINT NULL, PRIMARY KEY (kind, name))",
    "CREATE TABLE IF NOT EXISTS plugin_override_version ("
    "id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
    "INSERT INTO plugin_override_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)


class PluginOverride(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin's change: enabled or not (None: as in the file) and settings merged over
    the file's (None: as in the file). Secret values may be ``{"env": "NAME"}``."""

    kind: str
    name: str
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    version: int = 0

    @property
    def qualified_name(self) -> str:
        """``kind.name``."""
        return f"{self.kind}.{self.name}"


async def override_version(db: Database) -> int:
    """The counter bumped by every change (0 when nothing was ever changed)."""
    value = await db.fetchval("SELECT version FROM plugin_override_version WHERE id = 1")
    return int(value or 0)


async def read_overrides(db: Database) -> tuple[int, list[PluginOverride]]:
    """The version and every override, read in one transaction (a consistent pair)."""
    async with db.transaction():
        version = await override_version(db)
        rows = await db.fetch(
            "SELECT kind, name, enabled, settings, version FROM plugin_override "
            "ORDER BY version, kind, name"
        )
    return version, [
        PluginOverride(
            kind=str(r["kind"]),
            name=str(r["name"]),
            enabled=None if r["enabled"] is None else bool(r["enabled"]),
            settings=None if r["settings"] is None else json.loads(r["settings"]),
            version=int(r["version"]),
        )
        for r in rows
    ]


async def write_override(db: Database, override: PluginOverride, actor: int | None) -> int:
    """Store one plugin's override (replacing its previous one); return the new version."""
    async with db.transaction():
        version = int(
            await db.fetchval(
                "UPDATE plugin_override_version SET version = version + 1 WHERE id = 1 "
                "RETURNING version"
            )
        )
        await db.fetch(
            "INSERT INTO plugin_override "
            "(kind, name, enabled, settings, version, updated_at, updated_by) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (kind, name) DO UPDATE SET "
            "enabled = excluded.enabled, settings = excluded.settings, "
            "version = excluded.version, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            override.kind,
            override.name,
            override.enabled,
            None if override.settings is None else json.dumps(override.settings),
            version,
            datetime.now(UTC).isoformat(),
            actor,
        )
    return version


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def effective_settings(
    base: Settings, overrides: Sequence[PluginOverride], env: Mapping[str, str] | None = None
) -> Settings:
    """The settings file's configuration with the overrides applied; ConfigError names
    every problem (an unknown kind, an environment variable that is not set).

    A plugin enabled here but not in the file is called after the file's plugins of its
    kind; settings keys replace the file's keys of the same name, the others stay.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    selection = {kind: list(getattr(base.plugins, kind)) for kind in NAMESPACES}
    tables = copy.deepcopy(base.plugin)
    secret_paths = list(base.secret_paths)
    for item in overrides:
        if item.kind not in NAMESPACES:
            problems.append(f"{item.qualified_name}: unknown plugin kind {item.kind!r}")
            continue
        names = selection[item.kind]
        if item.enabled is True and item.name not in names:
            names.append(item.name)
        elif item.enabled is False:
            selection[item.kind] = [n for n in names if n != item.name]
        if item.settings is None:
            continue
        prefix = f"plugin.{item.kind}.{item.name}"
        resolved, secrets, missing = resolve_env_references(item.settings, prefix, env)
        problems += [f"{item.qualified_name} (admin settings): {p}" for p in missing]
        for key in resolved:
            secret_paths = [p for p in secret_paths if not _under(p, f"{prefix}.{key}")]
        table = dict(tables.get(item.kind, {}).get(item.name, {}))
        table.update(resolved)
        tables.setdefault(item.kind, {})[item.name] = table
        secret_paths += secrets
    if problems:
        raise ConfigError(problems)
    return msgspec.structs.replace(
        base, plugins=PluginSelection(**selection), plugin=tables, secret_paths=secret_paths
    )


async def load_effective_settings(base: Settings) -> Settings:
    """The effective settings of a helpdesk, read from its database (for one-off commands).

    The database is not created or migrated here: without it, or before migration 0011,
    the settings file is the whole configuration.
    """
    if base.is_sqlite:
        _, target = parse_database_url(base.database.url)
        if not os.path.exists(target):
            return base
    db = Database(base.database.url, pool_size=1)
    try:
        await db.start()
        try:
            _, overrides = await read_overrides(db)
        except Exception:  # not migrated yet: no overrides
            return base
        return effective_settings(base, overrides)
    finally:
        await db.close()

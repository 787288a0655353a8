"""Settings: one TOML file plus environment overrides, validated strictly.

Unknown keys are errors. A value written as ``{ env = "NAME" }`` is read from the environment
and is treated as a secret: it is redacted wherever configuration is shown.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ticketcore.errors import ConfigError

#: Plugin kinds and the entry-point namespace each is discovered in.
NAMESPACES: dict[str, str] = {
    "channels": "ticketcore.channels",
    "routing": "ticketcore.routing",
    "sla": "ticketcore.sla",
    "notifiers": "ticketcore.notifiers",
    "kb": "ticketcore.kb",
    "plugins": "ticketcore.plugins",
}

REDACTED = "********"
_SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "private_key")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    # Subclasses repeat ``frozen=True``: msgspec inherits it at run time, but mypy's
    # dataclass_transform does not ("Non-frozen dataclass cannot inherit from a frozen one").
    pass


class DatabaseSettings(_Strict, frozen=True):
    """Where tickets are stored: ``sqlite:///path.db`` or ``postgresql://user@host/db``."""

    url: str = "sqlite:///ticketcore.db"
    pool_size: int = 16


class ServerSettings(_Strict, frozen=True):
    """How ``ticketcore serve`` listens."""

    host: str = "127.0.0.1"
    port: int = 8000
    embedded_worker: bool = True
    base_url: str | None = None


class PluginSelection(_Strict, frozen=True):
    """Which plugins are enabled, per kind, in call order."""

    channels: list[str] = []
    routing: list[str] = []
    sla: list[str] = []
    notifiers: list[str] = []
    kb: list[str] = []
    plugins: list[str] = []

    def enabled(self) -> list[tuple[str, str]]:
        """(kind, name) pairs for every enabled plugin, kinds in a fixed order."""
        return [(kind, name) for kind in NAMESPACES for name in getattr(self, kind)]


class Limits(_Strict, frozen=True):
    """Size limits that protect the helpdesk from oversized input."""

    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments_per_entry: int = 20
    max_body_chars: int = 1_000_000
    max_subject_chars: int = 500


class WebSettings(_Strict, frozen=True):
    """The web pages: sessions, cookies, templates and language.

    ``secret_key`` signs session cookies; every server process of one helpdesk needs the
    same one (without it, each process makes a random key and sessions do not survive a
    restart). ``secure_cookies = false`` is for plain-HTTP development on localhost only.
    ``templates_dir`` holds an organisation's templates, looked up before plugin and
    built-in templates of the same name.
    """

    secret_key: str | None = None
    secure_cookies: bool = True
    session_hours: int = 12
    templates_dir: str | None = None
    default_language: str = "en"
    #: The helpdesk's address as customers reach it (``https://help.example.org``), for links
    #: in mails such as the e-mailed sign-in link (never taken from a request's Host header).
    #: Unset: customers cannot ask for a sign-in link.
    public_url: str | None = None


class Settings(_Strict, frozen=True):
    """The whole configuration of one helpdesk."""

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    plugins: PluginSelection = PluginSelection()
    #: Per-plugin settings: ``[plugin.<kind>.<name>]`` tables, validated by each plugin.
    plugin: dict[str, dict[str, dict[str, Any]]] = {}
    limits: Limits = Limits()
    web: WebSettings = WebSettings()
    storage_dir: str = "var/attachments"
    #: Names of settings read from the environment, e.g. ``plugin.channels.email.password``.
    secret_paths: list[str] = []

    def plugin_config(self, kind: str, name: str) -> dict[str, Any]:
        """The raw settings table of one plugin (empty if none is given)."""
        return self.plugin.get(kind, {}).get(name, {})

    @property
    def is_sqlite(self) -> bool:
        """Whether the database URL names SQLite."""
        return self.database.url.startswith("sqlite")


def _resolve_env(
    value: Any, path: str, env: Mapping[str, str], secrets: list[str], problems: list[str]
) -> Any:
    """Replace ``{env = "NAME"}`` tables by the environment value, recording secret paths."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            secrets.append(path)
            if name not in env:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]
        return {
            k: _resolve_env(v, f"{path}.{k}" if path else k, env, secrets, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_env(v, f"{path}[{i}]", env, secrets, problems) for i, v in enumerate(value)
        ]
    return value


def resolve_env_references(
    value: Any, path: str, env: Mapping[str, str] | None = None
) -> tuple[Any, list[str], list[str]]:
    """``value`` with ``{ env = "NAME" }`` tables read from the environment, as the settings
    file's are: (resolved value, paths of the secrets found, problems)."""
    secrets: list[str] = []
    problems: list[str] = []
    resolved = _resolve_env(value, path, os.environ if env is None else env, secrets, problems)
    return resolved, secrets, problems


def settings_from_mapping(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, source: str = "settings"
) -> Settings:
    """Validate a parsed configuration; raise ConfigError naming each problem and where."""
    env = os.environ if env is None else env
    problems: list[str] = []
    secrets: list[str] = []
    resolved = _resolve_env(dict(data), "", env, secrets, problems)
    if "TICKETCORE_DATABASE_URL" in env:
        resolved.setdefault("database", {})["url"] = env["TICKETCORE_DATABASE_URL"]
    resolved["secret_paths"] = secrets
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    try:
        settings = msgspec.convert(resolved, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError([f"{source}: {exc}"]) from exc
    # ``plugin`` is a free-form table, so msgspec cannot refuse a misspelled kind there
    # (``[plugin.routng.rules]``): the settings would be silently ignored.
    unknown_kinds = sorted(set(settings.plugin) - set(NAMESPACES))
    if unknown_kinds:
        raise ConfigError(
            [
                f"{source}: [plugin.{kind}]: unknown plugin kind; one of {', '.join(NAMESPACES)}"
                for kind in unknown_kinds
            ]
        )
    return settings


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings from a TOML file (or defaults when ``path`` is None) and the environment."""
    if path is None:
        return settings_from_mapping({}, env)
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"{file}: no such configuration file"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}"]) from exc
    # A folder, an unreadable file or one that is not UTF-8 escaped as a bare traceback.
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read the configuration file: {exc}"]) from exc
    return settings_from_mapping(data, env, source=str(file))


def is_secret_key(key: str) -> bool:
    """Whether a setting's name says it holds a secret."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact(value: Any, path: str, secret_paths: set[str]) -> Any:
    """A copy of ``value`` with secrets replaced by a fixed mask, for display."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if is_secret_key(k) and not isinstance(v, dict)
                else redact(v, f"{path}.{k}", secret_paths)
            )
            for k, v in value.items()
        }
    if path in secret_paths:
        return REDACTED
    if isinstance(value, list):
        # Same path scheme as _resolve_env (``name[i]``): without this, a secret read from
        # the environment inside a list (e.g. a list of webhooks) was shown in clear.
        return [redact(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value

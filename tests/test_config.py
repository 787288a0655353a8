"""Settings from a TOML file and the environment: defaults, strict validation with the
location of each problem, the database URL override, secrets, and unreadable files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketcore import ConfigError, Settings, load_settings
from ticketcore.config import REDACTED, redact, settings_from_mapping


def write(tmp_path: Path, text: str, name: str = "helpdesk.toml") -> Path:
    """A settings file with ``text``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    """What loading ``path`` reports."""
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={} if env is None else env)
    return caught.value.problems


def test_defaults_without_a_file_or_with_an_empty_one(tmp_path: Path) -> None:
    from_nothing = load_settings(None, env={})
    from_empty = load_settings(write(tmp_path, ""), env={})

    assert from_nothing == from_empty == Settings()
    assert from_nothing.database.url == "sqlite:///ticketcore.db"
    assert from_nothing.is_sqlite
    assert (from_nothing.server.host, from_nothing.server.port) == ("127.0.0.1", 8000)
    assert from_nothing.plugins.enabled() == []
    assert from_nothing.plugin_config("routing", "rules") == {}
    assert from_nothing.secret_paths == []


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        storage_dir = "/srv/files"

        [database]
        url = "postgresql://helpdesk@db/helpdesk"
        pool_size = 4

        [server]
        port = 9000
        embedded_worker = false

        [plugins]
        routing = ["rules", "round_robin"]
        notifiers = ["email"]

        [plugin.routing.round_robin]
        default_team = "support"

        [limits]
        max_subject_chars = 200
        """,
    )

    settings = load_settings(path, env={})

    assert settings.database.url == "postgresql://helpdesk@db/helpdesk"
    assert not settings.is_sqlite
    assert (settings.database.pool_size, settings.server.port) == (4, 9000)
    assert settings.server.embedded_worker is False
    assert settings.plugins.enabled() == [
        ("routing", "rules"),
        ("routing", "round_robin"),
        ("notifiers", "email"),
    ]
    assert settings.plugin_config("routing", "round_robin") == {"default_team": "support"}
    assert settings.limits.max_subject_chars == 200
    assert settings.storage_dir == "/srv/files"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("databse = {}", "Object contains unknown field `databse`"),
        (
            "[database]\nurl = 'sqlite:///x.db'\npoolsize = 2",
            "unknown field `poolsize` - at `$.database`",
        ),
        ("[plugins]\nrouter = ['rules']", "unknown field `router` - at `$.plugins`"),
    ],
    ids=["top-level", "in-database", "plugin-kind-list"],
)
def test_unknown_keys_are_rejected_with_their_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    (problem,) = problems(path)

    assert problem.startswith(f"{path}: ")
    assert message in problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 'eighty'", "Expected `int`, got `str` - at `$.server.port`"),
        ("[database]\nurl = 5", "Expected `str`, got `int` - at `$.database.url`"),
        ("[plugins]\nrouting = 'rules'", "Expected `array`, got `str` - at `$.plugins.routing`"),
        (
            "[plugin.routing]\nrules = 3",
            "Expected `object`, got `int` - at `$.plugin[...][...]`",  # msgspec hides dict keys
        ),
    ],
    ids=["port", "url", "routing-not-a-list", "plugin-table"],
)
def test_wrong_types_are_rejected_with_their_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [f"{path}: {message}"]


def test_misspelled_plugin_kind_in_plugin_tables_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[plugin.routng.rules]\nrules = []")

    assert problems(path) == [
        f"{path}: [plugin.routng]: unknown plugin kind; "
        "one of channels, routing, sla, notifiers, kb, plugins"
    ]


def test_database_url_from_the_environment_wins(tmp_path: Path) -> None:
    url = "postgresql://ops@db.internal/helpdesk"
    with_section = write(tmp_path, "[database]\nurl = 'sqlite:///local.db'\npool_size = 3")
    without_section = write(tmp_path, "[server]\nport = 8001", name="other.toml")

    overridden = load_settings(with_section, env={"TICKETCORE_DATABASE_URL": url})
    added = load_settings(without_section, env={"TICKETCORE_DATABASE_URL": url})
    defaults = load_settings(None, env={"TICKETCORE_DATABASE_URL": url})

    assert overridden.database.url == added.database.url == defaults.database.url == url
    assert overridden.database.pool_size == 3, "only the URL is overridden"


def test_process_environment_is_used_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETCORE_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("TC_TEST_IMAP_PASSWORD", "hunter2")
    path = write(tmp_path, "[plugin.channels.email]\npassword = { env = 'TC_TEST_IMAP_PASSWORD' }")

    settings = load_settings(path)

    assert settings.database.url == "sqlite:///from-env.db"
    assert settings.plugin_config("channels", "email") == {"password": "hunter2"}


def test_secrets_come_from_the_environment_and_are_redacted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [plugin.notifiers.webhook]
        url = "https://hooks.example"
        signing = { env = "TC_TEST_SIGNING" }
        targets = [{ name = "ops", auth = { env = "TC_TEST_AUTH" } }]
        api_key = "written-in-the-file"
        """,
    )

    settings = load_settings(path, env={"TC_TEST_SIGNING": "sig-123", "TC_TEST_AUTH": "auth-456"})
    raw = settings.plugin_config("notifiers", "webhook")
    shown = redact(raw, "plugin.notifiers.webhook", set(settings.secret_paths))

    assert raw["signing"] == "sig-123" and raw["targets"][0]["auth"] == "auth-456"
    assert sorted(settings.secret_paths) == [
        "plugin.notifiers.webhook.signing",
        "plugin.notifiers.webhook.targets[0].auth",
    ]
    assert shown == {
        "url": "https://hooks.example",
        "signing": REDACTED,
        "targets": [{"name": "ops", "auth": REDACTED}],
        "api_key": REDACTED,  # secret by its name, even when written in the file
    }


def test_every_missing_environment_variable_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [plugin.channels.email]
        password = { env = "TC_TEST_MISSING_ONE" }
        [plugin.kb.wiki]
        token = { env = "TC_TEST_MISSING_TWO" }
        """,
    )

    assert problems(path) == [
        f"{path}: plugin.channels.email.password: environment variable TC_TEST_MISSING_ONE "
        "is not set",
        f"{path}: plugin.kb.wiki.token: environment variable TC_TEST_MISSING_TWO is not set",
    ]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "helpdesk.toml"

    assert problems(path) == [f"{path}: no such configuration file"]


def test_invalid_toml_names_the_path_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurl = 'sqlite:///x.db'\nport = \n")

    (problem,) = problems(path)

    assert problem.startswith(f"{path}: not valid TOML: ")
    assert "line 3" in problem


@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
def test_unreadable_file_is_a_config_error_naming_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "helpdesk.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"[database]\nurl = '\xff\xfe'\n")

    (problem,) = problems(path)

    assert problem.startswith(f"{path}: cannot read the configuration file: ")


def test_config_error_lists_each_problem_in_its_message() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(
            {"plugin": {"kb": {"a": {"x": {"env": "A"}, "y": {"env": "B"}}}}}, env={}
        )

    error = caught.value
    assert error.code == "config_error"
    assert str(error) == (
        "configuration problems:\n"
        "  - settings: plugin.kb.a.x: environment variable A is not set\n"
        "  - settings: plugin.kb.a.y: environment variable B is not set"
    )

"""The README's quickstart is exactly two commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path


def _quickstart_commands(readme: str) -> list[str]:
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def test_quickstart_has_two_commands(repo_root: Path) -> None:
    commands = _quickstart_commands((repo_root / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 2, commands
    serve, test = commands
    assert "ticketcore serve --demo" in serve
    assert "tox" in test
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command(repo_root: Path) -> None:
    test_command = _quickstart_commands((repo_root / "README.md").read_text(encoding="utf-8"))[1]
    ci_lines = (repo_root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_the_configuration_example_is_valid(repo_root: Path) -> None:
    """The README's configuration example loads, and every plugin it configures accepts its
    settings (so the example cannot drift from the plugins' Config types)."""
    import tomllib

    from ticketcore.config import settings_from_mapping
    from ticketcore.plugin_manager import build_plugin_manager

    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```toml\n(.*?)\n```", section, flags=re.S)
    data = tomllib.loads(example)
    # Enable every plugin the example configures, as an admin following it would.
    data["plugins"] = {kind: sorted(names) for kind, names in data["plugin"].items()}
    settings = settings_from_mapping(
        data, env={"TICKETCORE_SMTP_PASSWORD": "x", "TICKETCORE_IMAP_PASSWORD": "y"}
    )
    _pm, loaded = build_plugin_manager(settings)
    assert {p.qualified_name for p in loaded} == {
        "routing.rules",
        "routing.round_robin",
        "channels.email",
    }

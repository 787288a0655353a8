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

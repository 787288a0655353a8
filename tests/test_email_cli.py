"""``ticketcore mail ingest``: a Maildir, an mbox, a single file and an MTA pipe on stdin,
run for real in a subprocess on both engines."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import cli_env, run_cli, write_config

from ticketcore.plugins.channels.email.testing import make_mail

EMAIL = """
[plugins]
channels = ["email"]

[plugin.channels.email]
acknowledge = false
[plugin.channels.email.addresses]
"support@help.test" = ""
"""


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    """A settings file enabling the e-mail channel on this test's database."""
    return write_config(tmp_path / "ticketcore.toml", db_url, EMAIL)


def outcomes(process: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert process.returncode == 0, process.stderr
    summary: dict[str, object] = json.loads(process.stdout.strip().splitlines()[-1])
    return summary


def test_ingest_a_maildir_an_mbox_and_a_file_once_each(config: Path, tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(3):
        box.add(make_mail(subject=f"maildir {n}", message_id=f"<md{n}@customer.test>"))
    mbox = mailbox.mbox(tmp_path / "archive.mbox")
    for n in range(2):
        mbox.add(make_mail(subject=f"mbox {n}", message_id=f"<mb{n}@customer.test>"))
    mbox.flush()
    single = tmp_path / "one.eml"
    single.write_bytes(make_mail(subject="single", message_id="<single@customer.test>"))

    assert outcomes(run_cli("mail", "ingest", "-c", str(config), str(tmp_path / "Maildir")))[
        "outcomes"
    ] == {"created": 3}
    assert outcomes(run_cli("mail", "ingest", "-c", str(config), str(tmp_path / "archive.mbox")))[
        "outcomes"
    ] == {"created": 2}
    assert outcomes(run_cli("mail", "ingest", "-c", str(config), str(single)))["outcomes"] == {
        "created": 1
    }
    # A migration run twice imports nothing twice.
    again = outcomes(run_cli("mail", "ingest", "-c", str(config), str(tmp_path / "Maildir")))
    assert again["outcomes"] == {"duplicate": 3}


def test_stdin_pipe_and_bad_paths(config: Path, tmp_path: Path) -> None:
    raw = make_mail(subject="piped", message_id="<pipe@customer.test>")
    piped = subprocess.run(
        [sys.executable, "-m", "ticketcore.cli", "mail", "ingest", "-c", str(config), "-"],
        input=raw,
        capture_output=True,
        timeout=120,
        env=cli_env(),
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["outcomes"] == {"created": 1}

    missing = run_cli("mail", "ingest", "-c", str(config), str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_ingest_without_the_channel_enabled_says_so(tmp_path: Path, db_url: str) -> None:
    plain = write_config(tmp_path / "plain.toml", db_url)
    (tmp_path / "x.eml").write_bytes(make_mail())
    result = run_cli("mail", "ingest", "-c", str(plain), str(tmp_path / "x.eml"))
    assert result.returncode == 2
    assert "e-mail channel is not enabled" in result.stderr

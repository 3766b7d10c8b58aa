"""The console script as CI runs it, in a fresh interpreter: what a remote gate check imports.

`-X importtime` lists every module the process imported, however indirectly, so a heavy import
that sneaks in through a helper is caught here, not only one written in the command modules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "gatekeeper"
FRAMEWORKS = {"flask", "sqlalchemy", "alembic", "flask_sqlalchemy", "flask_migrate", "werkzeug"}


def imported_by(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "gatekeeper.cli" in names, completed.stderr[-2000:]
    return names, completed


@pytest.mark.parametrize(
    "args",
    [
        ("gate", "check", "2026.11-r3", "--url", "http://127.0.0.1:9", "--token", "gk_x"),
        ("gate", "check", "2026.11-r3", "--url", "http://127.0.0.1:9", "--token", "gk_x", "--wait"),
        ("--help",),
        ("gate", "--help"),
    ],
)
def test_the_remote_gate_check_and_help_import_no_framework(args: tuple[str, ...]) -> None:
    names, completed = imported_by(*args)
    tops = {name.split(".")[0] for name in names}
    assert not tops & FRAMEWORKS, sorted(tops & FRAMEWORKS)
    assert not {n for n in names if n.startswith(("gatekeeper.db", "gatekeeper.services"))}
    if "check" in args:
        assert completed.returncode == 4, completed.stderr[-500:]
        assert "cannot reach http://127.0.0.1:9" in completed.stderr


def test_the_check_catches_a_framework_import() -> None:
    """The same measurement sees Flask when a command does load the app."""
    names, _ = imported_by("routes", "--help")
    assert "flask" in {name.split(".")[0] for name in names}

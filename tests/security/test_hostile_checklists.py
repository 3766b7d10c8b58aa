"""Checklist files built to mislead or crash: lint and sync refuse them with file:line:col."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import ChecklistVersion
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.security

CORPUS = REPO / "tests" / "data" / "invalid"
EXPECTED = json.loads((CORPUS / "expected.json").read_text("utf-8"))
HOSTILE = {
    # corpus file -> the sample it is a copy of
    "bidi-override.yaml": "payments-api.yaml",
    "crlf-in-title.yaml": "payments-api.yaml",
    "escaped-nul-in-name.yaml": "storefront-web.yaml",
    "version-5000-digits.yaml": "payments-api.yaml",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_lint_refuses_the_file_at_its_place(name: str) -> None:
    entry = EXPECTED[name]
    result = CliRunner().invoke(cli, ["checklists", "lint", str(CORPUS / name)])
    assert result.exit_code == 1, result.output
    assert f"{CORPUS / name}:{entry['line']}:{entry['col']}: {entry['message']}" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_sync_refuses_the_file_and_writes_nothing(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, name: str
) -> None:
    directory = tmp_path / "checklists"
    shutil.copytree(SAMPLES, directory)
    shutil.copy(CORPUS / name, directory / HOSTILE[name])
    result = runner.invoke(cli, ["checklists", "sync", str(directory)])
    assert result.exit_code == 1, result.output
    entry = EXPECTED[name]
    assert f":{entry['line']}:{entry['col']}: {entry['message']}" in result.stderr
    assert "Traceback" not in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ChecklistVersion)) == 0

"""A damaged SQLite file: every answer is a 503 that says the database is unreadable, with one
critical log line, and the gate never reads as open (the CLI, the API, a remote gate check)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from gatekeeper import gate_client
from gatekeeper.cli import cli
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.gate import OPEN
from tests.conftest import dispose, make_app
from tests.functional.api_helpers import assert_envelope, create_token
from tests.functional.web_helpers import client, fresh_csrf
from tests.support.flows import KEY, prepare
from tests.support.governance import gate, sign_everything

pytestmark = pytest.mark.reliability

PAGE = 4096


def garble(path: Path, *, keep: int) -> None:
    """Overwrite everything after the first `keep` bytes with noise, as a failing disk would."""
    size = path.stat().st_size
    with path.open("r+b") as damaged:
        damaged.seek(keep)
        damaged.write(os.urandom(size - keep))


@pytest.fixture(params=["not-a-database", "damaged-pages"])
def damaged(
    request: pytest.FixtureRequest,
    migrated_databases: dict[str, str],
    tmp_path: Path,
    clock: FixedClock,
) -> Iterator[tuple[Flask, dict[str, str]]]:
    """An app on a file that held an open gate, a token and sign-off links, then was damaged:
    entirely (no SQLite header left) or past its first page (tables unreadable)."""
    database = tmp_path / "damaged.sqlite"
    shutil.copy(migrated_databases["sqlite"], database)
    healthy = make_app(f"sqlite:///{database}", tmp_path / "instance", clock)
    with healthy.app_context():
        links = prepare(healthy, clock)
        sign_everything(clock, KEY)
        assert gate(healthy, clock, KEY).status == OPEN
        secrets = {
            "api": create_token(clock, "ci", ["gate:read"]),
            "link": links["raj@example.com"],
        }
    dispose(healthy)
    garble(database, keep=0 if request.param == "not-a-database" else PAGE)
    app = make_app(f"sqlite:///{database}", tmp_path / "instance", clock)
    try:
        with app.app_context():
            yield app, secrets
    finally:
        dispose(app)


def critical_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = []
    for record in caplog.records:
        assert record.levelno < logging.ERROR or record.levelno == logging.CRITICAL, (
            record.getMessage()
        )
        assert record.exc_info is None, f"a traceback was logged: {record.getMessage()}"
        if record.levelno == logging.CRITICAL:
            found.append(record.getMessage())
    return found


def test_the_api_answers_503_database_unreadable_and_never_open(
    damaged: tuple[Flask, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, secrets = damaged
    browser = app.test_client()
    response = browser.get(
        f"/api/v1/packages/{KEY}/gate", headers={"Authorization": f"Bearer {secrets['api']}"}
    )
    error = assert_envelope(response, 503, "database_unreadable")
    assert "cannot be read" in error["message"]
    assert response.headers["Retry-After"]
    [line] = critical_lines(caplog)
    assert line.startswith(f"database unreadable on GET /api/v1/packages/{KEY}/gate: ")
    assert "\n" not in line
    assert secrets["api"] not in caplog.text


def test_pages_answer_the_friendly_503_and_the_log_has_no_token(
    damaged: tuple[Flask, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, secrets = damaged
    browser = client(app)
    for method in ("GET", "POST"):
        form = {"csrf_token": fresh_csrf(browser)} if method == "POST" else None
        response = browser.open(f"/s/{secrets['link']}", method=method, data=form)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert "cannot be read" in response.text
        assert 'data-status="503"' in response.text
    lines = critical_lines(caplog)
    assert len(lines) == 2, lines
    for line, method in zip(lines, ("GET", "POST"), strict=True):
        assert line.startswith(f"database unreadable on {method} /s/[token]: "), line
    assert secrets["link"] not in caplog.text


def test_readiness_fails_with_the_reason(
    damaged: tuple[Flask, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = damaged
    response = app.test_client().get("/readyz")
    error = assert_envelope(response, 503, "database_unreadable")
    assert "cannot be read" in error["message"]


def test_gate_check_fails_closed_locally_and_through_the_api(
    damaged: tuple[Flask, dict[str, str]],
) -> None:
    app, secrets = damaged
    local = app.test_cli_runner().invoke(cli, ["gate", "check", KEY])
    assert local.exit_code == gate_client.EXIT_ERROR, local.output
    assert "error:" in local.output
    assert "OPEN" not in local.output

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{http.server_port}"
        remote = CliRunner().invoke(
            cli, ["gate", "check", KEY, "--url", url, "--token", secrets["api"]]
        )
    finally:
        http.shutdown()
        thread.join(5)
    assert remote.exit_code == gate_client.EXIT_ERROR, remote.output
    assert "HTTP 503: The database cannot be read" in remote.output

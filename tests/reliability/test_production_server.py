"""The production server as documented (`gunicorn -c python:gatekeeper.gunicorn_config`), run for
real on loopback: its access log and error log never hold an emailed-link token, however the
link is spelled or wherever it appears (path, query, Referer), and the app's own lines (a
database failure on a link page) reach the error log masked too."""

from __future__ import annotations

import http.client
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from gatekeeper.domain.clock import FixedClock, SystemClock
from tests.conftest import REPO, clean_environ, dispose, make_app
from tests.support.flows import prepare
from tests.support.mail import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

START_TIMEOUT = 60.0
SIGNER = "raj@example.com"


@dataclass(frozen=True)
class Server:
    port: int
    database: Path
    token: str
    unopened: str  # another signer's link: its first open writes an audit event

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


@pytest.fixture
def gunicorn(
    migrated_databases: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Server, Path, Path]]:
    """gunicorn with the shipped config on a SQLite file holding a submitted package."""
    database = tmp_path / "gatekeeper.sqlite"
    database.write_bytes(Path(migrated_databases["sqlite"]).read_bytes())
    # The server runs on the real clock: the links are issued at the real time to stay valid.
    setup = make_app(f"sqlite:///{database}", tmp_path / "setup", FixedClock(SystemClock().now()))
    with setup.app_context():
        links = prepare(setup, FixedClock(SystemClock().now()))
    token = links.pop(SIGNER)
    unopened = next(iter(links.values()))
    dispose(setup)
    port = free_port()
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    environ = clean_environ(
        GATEKEEPER_DATABASE_URL=f"sqlite:///{database}",
        GATEKEEPER_SQLITE_BUSY_TIMEOUT="0.2",
        WEB_CONCURRENCY="2",
        PYTHONPATH=str(REPO),
        # gunicorn's control socket goes here, not into the home directory.
        XDG_RUNTIME_DIR=str(tmp_path),
    )
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:gatekeeper.gunicorn_config",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            env=environ,
            stdout=stdout,
            stderr=stderr,
        )
    server = Server(port, database, token, unopened)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, err.read_text()
            try:
                if server.get("/healthz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield server, out, err
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def spellings(token: str) -> list[str]:
    encoded = "".join(f"%{byte:02X}" for byte in token.encode())
    return [
        f"/s/{token}",
        f"/s/{token}==",
        f"/s/{token}/",
        f"/s/{token}?utm_source=mail",
        f"/s/{encoded}",
        f"/s/{quote(encoded)}",
        f"/%73/{token}",
        f"/login?next=%2Fs%2F{token}",
    ]


def test_gunicorn_logs_never_show_a_token(gunicorn: tuple[Server, Path, Path]) -> None:
    server, out, err = gunicorn
    token = server.token
    assert server.get(f"/s/{token}") == 200
    for path in spellings(token):
        assert server.get(path, {"Referer": f"https://gk.example.com/s/{token}"}) < 500, path
    # A database failure on a link page: the app logs it, through gunicorn's error log. Only a
    # link's first open writes (later ones within the hour read only): open a fresh one.
    holder = sqlite3.connect(server.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        assert server.get(f"/s/{server.unopened}") == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert server.get("/readyz") == 200
    time.sleep(0.5)  # let the workers flush their last lines

    logged = out.read_text() + err.read_text()
    access = [line for line in logged.splitlines() if '"GET ' in line]
    assert len(access) >= len(spellings(token)) + 3, logged
    for secret in (token, server.unopened):
        assert secret not in logged
        assert secret[:24] not in logged
    assert sum("/s/[token]" in line for line in access) >= 5, access
    assert "database unavailable on GET /s/[token]: OperationalError: database is locked" in (
        logged
    )
    assert "Traceback" not in logged
    assert "Booting worker" in logged, "gunicorn's own lines use the same log"

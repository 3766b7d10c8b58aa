"""Backups taken while the app writes restore to a database whose audit chain verifies."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit
from tests.conftest import dispose, make_app


def write_events(app: Flask, clock: FixedClock, stop: threading.Event, written: list[int]) -> None:
    with app.app_context():
        while not stop.is_set() and len(written) < 2000:
            with unit_of_work(db.session) as session:
                audit.record(session, action="load.write", actor="t", subject="s", now=clock.now())
            written.append(1)
        db.session.remove()


def restored_chain(url: str, instance: Path) -> tuple[bool, int]:
    restored = make_app(url, instance)
    try:
        with restored.app_context():
            report = audit.verify(db.session)
            return report.ok, report.events
    finally:
        dispose(restored)


def test_backup_under_writes_restores_with_an_intact_chain(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    with unit_of_work(db.session) as session:
        for _ in range(50):
            audit.record(session, action="seed", actor="t", subject="s", now=clock.now())
    stop, written = threading.Event(), []
    writer = threading.Thread(target=write_events, args=(app, clock, stop, written))
    writer.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        target = tmp_path / "backup.dump"
        result = runner.invoke(cli, ["backup", str(target)])
        assert result.exit_code == 0, result.output
    finally:
        stop.set()
        writer.join(30)
    assert "backup written to" in result.stdout
    if db.engine.dialect.name == "sqlite":
        url = f"sqlite:///{target}"
    else:
        if shutil.which("pg_restore") is None:
            pytest.skip("pg_restore is not installed")
        base = db.engine.url.set(drivername="postgresql")
        admin = sa.create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS gatekeeper_restore_test")
            connection.exec_driver_sql("CREATE DATABASE gatekeeper_restore_test")
        admin.dispose()
        restore_url = base.set(database="gatekeeper_restore_test")
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                f"--dbname={restore_url.render_as_string(hide_password=False)}",
                str(target),
            ],
            check=True,
            capture_output=True,
        )
        url = restore_url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    ok, events = restored_chain(url, tmp_path / "restored")
    assert ok
    assert 50 + 20 <= events <= 50 + len(written)
    live = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    assert live == 50 + len(written)


def test_backup_never_overwrites(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    target = tmp_path / "exists.db"
    target.write_text("precious")
    result = runner.invoke(cli, ["backup", str(target)])
    assert result.exit_code == 1
    assert "never overwrite" in result.stderr
    assert target.read_text() == "precious"

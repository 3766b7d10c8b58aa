"""SQLite runs with WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE for writes."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Application, ChecklistVersion
from gatekeeper.db.unit_of_work import unit_of_work

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def sqlite_app(app: Flask) -> Flask:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite-specific behaviour")
    return app


def test_pragmas_are_set_on_every_connection(sqlite_app: Flask) -> None:
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_foreign_keys_are_enforced(sqlite_app: Flask) -> None:
    with pytest.raises(sa.exc.IntegrityError), unit_of_work(db.session) as session:
        session.add(
            ChecklistVersion(
                application_id=999,
                version=1,
                sha256="0" * 64,
                content="{}",
                source_yaml="",
                source_path="x.yaml",
                state="pending_review",
                synced_at=NOW,
            )
        )
        session.flush()


def test_a_write_transaction_holds_the_write_lock_from_its_start(sqlite_app: Flask) -> None:
    path = db.engine.url.database
    assert path
    entered = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with sqlite_app.app_context(), unit_of_work(db.session):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert entered.wait(5)
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
    finally:
        release.set()
        thread.join()


def test_reads_do_not_take_the_write_lock(sqlite_app: Flask) -> None:
    db.session.execute(sa.select(Application)).all()
    assert db.session().in_transaction()
    other = sqlite3.connect(db.engine.url.database or "", timeout=0.05, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_times_come_back_aware_utc(app: Flask) -> None:
    with unit_of_work(db.session) as session:
        session.add(Application(slug="x", title="X", created_at=NOW))
    db.session.expire_all()
    stored = db.session.scalar(sa.select(Application.created_at))
    assert stored == NOW
    assert stored.tzinfo is not None


def test_naive_datetimes_are_refused(app: Flask) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with (
        pytest.raises(sa.exc.StatementError, match="naive datetime"),
        unit_of_work(db.session) as session,
    ):
        session.add(Application(slug="y", title="Y", created_at=naive))
        session.flush()


def test_unit_of_work_rolls_back_on_error(app: Flask) -> None:
    with pytest.raises(RuntimeError), unit_of_work(db.session) as session:
        session.add(Application(slug="z", title="Z", created_at=NOW))
        session.flush()
        raise RuntimeError("boom")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Application)) == 0

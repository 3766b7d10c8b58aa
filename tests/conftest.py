"""Shared fixtures: apps on a real migrated database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_migrate import upgrade

from gatekeeper.app import create_app
from gatekeeper.db.base import db
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher

# `X as X`: re-exported to the tests that sync checklists.
from tests.support.generated import CHECKLIST_AUTHOR as CHECKLIST_AUTHOR
from tests.support.keys import RECORD_KEY, write_audit_key
from tests.support.mail import catcher, point_mail_at

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "checklists"
POSTGRES_URL = os.environ.get("GATEKEEPER_TEST_DATABASE_URL", "")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
TEST_KEY = "k" * 40
# One deployment's keys, shared by every app a test starts (as a deployment's processes share
# them); the audit key lives outside the checkout, which tests must leave as they found it.
TEST_AUDIT_KEY = write_audit_key(Path(tempfile.mkdtemp(prefix="gatekeeper-keys-")) / "audit.pem")
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
_CHECKOUT = pytest.StashKey[str | None]()
_GIT_STATE = (("diff", "HEAD", "--binary"), ("ls-files", "--others", "--exclude-standard"))


def _checkout_state() -> str | None:
    """A digest of the checkout's changes (tracked and untracked files), or None outside git."""
    try:
        found = [
            subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, check=True, timeout=60
            ).stdout
            for args in _GIT_STATE
        ]
    except (OSError, subprocess.SubprocessError):
        return None
    return hashlib.sha256(b"\0".join(found)).hexdigest()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under pytest-xdist only the controller checks: a worker finishing early could otherwise
    # catch another worker's test in the middle of writing (and cleaning up) a file.
    if not hasattr(session.config, "workerinput"):
        session.config.stash[_CHECKOUT] = _checkout_state()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The suite must leave the checkout as it found it (screenshots, data files, …)."""
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None or _checkout_state() == before:
        return
    changed = subprocess.run(
        ["git", "status", "--short"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "FAILED: the test run changed files in the checkout", red=True)
        reporter.write_line(changed.rstrip())
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def clean_environ(**extra: str) -> dict[str, str]:
    """A clean environment: the developer's own GATEKEEPER_* variables never leak into tests."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    environ.update(
        GATEKEEPER_ENV="testing",
        GATEKEEPER_SECRET_KEYS=TEST_KEY,
        GATEKEEPER_RECORD_KEYS=RECORD_KEY,
        GATEKEEPER_AUDIT_SIGNING_KEY_FILE=str(TEST_AUDIT_KEY),
    )
    environ.update(extra)
    return environ


def make_app(
    database_url: str, instance: Path, clock: FixedClock | None = None, **environ: str
) -> Flask:
    app = create_app(
        clock=clock or FixedClock(START),
        environ=clean_environ(GATEKEEPER_DATABASE_URL=database_url, **environ),
        instance_path=str(instance),
    )
    app.config["TESTING"] = True
    return app


def postgres_url() -> str:
    """The PostgreSQL database of this test process: pytest-xdist workers get one each."""
    url = sa.engine.make_url(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        url = url.set(database=f"{url.database}_{worker}")
    return url.render_as_string(hide_password=False)


def create_postgres_database(url: str) -> None:
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        ).first()
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run the migrations once per engine; tests then copy (SQLite) or truncate (PostgreSQL)."""
    found: dict[str, str] = {}
    template = tmp_path_factory.mktemp("template") / "template.sqlite"
    app = make_app(f"sqlite:///{template}", template.parent)
    with app.app_context():
        upgrade()
    dispose(app)
    found["sqlite"] = str(template)
    if POSTGRES_URL:
        url = postgres_url()
        create_postgres_database(url)
        reset_postgres(url)
        app = make_app(url, template.parent)
        with app.app_context():
            upgrade()
        dispose(app)
        found["postgresql"] = url
    return found


def _truncate_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            # Replica mode skips triggers, including the audit table's append-only guard:
            # resetting between tests is the one place allowed to empty it.
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, migrated_databases: dict[str, str], tmp_path: Path
) -> str:
    if request.param == "sqlite":
        target = tmp_path / "gatekeeper.sqlite"
        shutil.copy(migrated_databases["sqlite"], target)
        return f"sqlite:///{target}"
    url = migrated_databases["postgresql"]
    _truncate_postgres(url)
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Flask]:
    app = make_app(database_url, tmp_path / "instance", clock)
    with app.app_context():
        yield app
    dispose(app)


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def smtp(app: Flask) -> Iterator[MailCatcher]:
    """A real SMTP server on loopback that the app's mail goes to."""
    with catcher() as box:
        point_mail_at(app, box.port)
        yield box

"""Shared fixtures: apps on a real migrated database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import shutil
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

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "checklists"
POSTGRES_URL = os.environ.get("GATEKEEPER_TEST_DATABASE_URL", "")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
TEST_KEY = "k" * 40
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def clean_environ(**extra: str) -> dict[str, str]:
    """A clean environment: the developer's own GATEKEEPER_* variables never leak into tests."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    environ.update(GATEKEEPER_ENV="testing", GATEKEEPER_SECRET_KEYS=TEST_KEY)
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
    url = POSTGRES_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


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

"""/readyz for load balancers: ready only when the database answers and is at this code's
migrations; otherwise 503 with the reason, as JSON. /healthz stays the liveness check."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.schema_version import schema_version
from gatekeeper.web import access
from tests.conftest import dispose, make_app
from tests.functional.api_helpers import assert_envelope
from tests.support.mail import free_port

PREVIOUS_MIGRATION = "cfec15d55ad4"


def head(app: Flask) -> list[str]:
    version = schema_version(db.session.connection(), app.extensions["migrate"].directory)
    db.session.rollback()
    return list(version.expected)


def test_ready_when_migrated_and_public(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json == {"status": "ready", "migrations": head(app)}
    assert access.is_public("health.readyz", "health")
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_not_ready_before_the_migrations_or_behind_them(
    tmp_path: Path, migrated_databases: dict[str, str]
) -> None:
    empty = make_app(f"sqlite:///{tmp_path / 'empty.sqlite'}", tmp_path / "empty")
    with empty.app_context():
        response = empty.test_client().get("/readyz")
        error = assert_envelope(response, 503, "unavailable")
        assert "gatekeeper db upgrade" in error["message"]
        assert error["details"] == {"database_at": [], "code_expects": head(empty)}
        assert response.headers["Retry-After"]
        assert empty.test_client().get("/healthz").status_code == 200, "liveness only"
    dispose(empty)

    behind = tmp_path / "behind.sqlite"
    shutil.copy(migrated_databases["sqlite"], behind)
    app = make_app(f"sqlite:///{behind}", tmp_path / "behind")
    with app.app_context():
        db.session.execute(
            sa.text(f"UPDATE alembic_version SET version_num = '{PREVIOUS_MIGRATION}'")
        )
        db.session.commit()
        error = assert_envelope(app.test_client().get("/readyz"), 503, "unavailable")
        assert error["details"]["database_at"] == [PREVIOUS_MIGRATION]
        [current] = head(app)
        db.session.execute(sa.text(f"UPDATE alembic_version SET version_num = '{current}'"))
        db.session.commit()
        assert app.test_client().get("/readyz").status_code == 200
    dispose(app)


def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"postgresql+psycopg://gatekeeper@127.0.0.1:{free_port()}/gatekeeper"
    app = make_app(nowhere, tmp_path)
    with app.app_context():
        response = app.test_client().get("/readyz")
        error = assert_envelope(response, 503, "unavailable")
        assert "unreachable" in error["message"]
        assert response.headers["Retry-After"]
    dispose(app)

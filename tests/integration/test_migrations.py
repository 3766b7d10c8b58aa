"""Migrations build the whole schema from empty, go back down, and match the models (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from gatekeeper.db.base import db
from gatekeeper.db.models import Base, ChecklistVersion
from tests.conftest import DATABASES, dispose, make_app, postgres_url, reset_postgres

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def test_migration_files_are_date_prefixed_and_reversible() -> None:
    files = sorted(VERSIONS.glob("*.py"))
    assert files
    for path in files:
        assert path.name[:8].isdigit(), path.name
        assert path.name[8] == "_", path.name
        source = path.read_text()
        assert "def downgrade():" in source
        body = source.split("def downgrade():", 1)[1]
        assert "op." in body, f"{path.name} has an empty downgrade"


@pytest.mark.parametrize("engine_name", DATABASES)
def test_upgrade_from_empty_downgrade_and_no_drift(engine_name: str, tmp_path: Path) -> None:
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        url = postgres_url()
        reset_postgres(url)
    app = make_app(url, tmp_path)
    try:
        with app.app_context():
            upgrade()
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                assert compare_metadata(context, Base.metadata) == []
                tables = set(sa.inspect(connection).get_table_names())
            assert set(Base.metadata.tables) <= tables
            downgrade(revision="base")
            with db.engine.connect() as connection:
                assert set(sa.inspect(connection).get_table_names()) <= {"alembic_version"}
            upgrade()
    finally:
        dispose(app)


def test_upgrading_a_sqlite_database_that_holds_sign_offs_keeps_them(tmp_path: Path) -> None:
    """Batch migrations rebuild referenced tables; foreign keys must not make them fail."""
    database = tmp_path / "old.sqlite"
    app = make_app(f"sqlite:///{database}", tmp_path)
    rows = [
        "INSERT INTO applications VALUES (1, 'a', 'A', '2026-01-01 00:00:00')",
        "INSERT INTO checklist_versions (id, application_id, version, sha256, content, "
        "source_yaml, source_path, state, synced_at) VALUES "
        "(1, 1, 1, 'x', '{}', '', 'p', 'approved', '2026-01-01 00:00:00')",
        "INSERT INTO packages (id, key, title, environment, assembled_by, state, revision, "
        "created_at, release_notes) VALUES "
        "(1, 'k', 't', 'e', 'a@example.com', 'in_review', 1, '2026-01-01 00:00:00', '')",
        "INSERT INTO package_applications (id, package_id, application_id, version_label, "
        "change_summary, checklist_version_id, changed_in_revision) "
        "VALUES (1, 1, 1, '1', '', 1, 1)",
        "INSERT INTO signoff_requests (id, package_id, package_application_id, kind, signer, "
        "revision, state, created_at) VALUES "
        "(1, 1, 1, 'item', 'x@example.com', 1, 'signed', '2026-01-01 00:00:00')",
        "INSERT INTO signoffs (id, package_id, package_application_id, request_id, kind, signer, "
        "decision, comment, evidence, scenarios_confirmed, revision, signed_at) VALUES "
        "(1, 1, 1, 1, 'item', 'x@example.com', 'pass', '', '', '', 1, '2026-01-01 00:00:00')",
    ]
    try:
        with app.app_context():
            upgrade(revision="12903b2f0917")
            with db.engine.begin() as connection:
                for statement in rows:
                    connection.exec_driver_sql(statement)
            upgrade()
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT count(*) FROM signoffs").scalar() == 1
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        dispose(app)


@pytest.mark.parametrize("engine_name", DATABASES)
def test_versions_synced_before_authors_were_recorded_keep_theirs(
    engine_name: str, tmp_path: Path
) -> None:
    """The one author a version had becomes its author set; a version synced without one is
    of unknown authorship (it then needs two reviewers' approvals)."""
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = postgres_url()
        reset_postgres(url)
    app = make_app(url, tmp_path)
    try:
        with app.app_context():
            upgrade(revision="848f46cdacaa")
            with db.engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO applications VALUES (1, 'a', 'A', '2026-01-01 00:00:00')"
                )
                for version, author in ((1, "'ana@example.com'"), (2, "NULL")):
                    connection.exec_driver_sql(
                        "INSERT INTO checklist_versions (id, application_id, version, sha256, "
                        "content, source_yaml, source_path, author, state, synced_at) VALUES "
                        f"({version}, 1, {version}, 'x', '{{}}', '', 'p', {author}, "
                        "'pending_review', '2026-01-01 00:00:00')"
                    )
            upgrade()
            with db.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(
                        ChecklistVersion.version,
                        ChecklistVersion.authors,
                        ChecklistVersion.authorship_unknown,
                    ).order_by(ChecklistVersion.version)
                ).all()
            assert [(v, a, u is None) for v, a, u in rows] == [
                (1, ["ana@example.com"], True),
                (2, [], False),
            ]
    finally:
        dispose(app)


@pytest.mark.parametrize("engine_name", DATABASES)
def test_findings_declined_before_classes_become_not_a_checklist_matter(
    engine_name: str, tmp_path: Path
) -> None:
    """A plain decline meant "not something the checklist should catch"; an accepted finding
    keeps no class (nobody said which item it escaped)."""
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = postgres_url()
        reset_postgres(url)
    app = make_app(url, tmp_path)
    try:
        with app.app_context():
            upgrade(revision="b9257705958c")
            with db.engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO applications VALUES (1, 'a', 'A', '2026-01-01 00:00:00')"
                )
                for finding_id, state in ((1, "declined"), (2, "accepted"), (3, "open")):
                    connection.exec_driver_sql(
                        "INSERT INTO findings (id, application_id, what_happened, impact, "
                        "could_have_caught, state, reported_at, rationale) VALUES "
                        f"({finding_id}, 1, 'w', 'i', 'c', '{state}', "
                        "'2026-01-01 00:00:00', 'kept')"
                    )
            upgrade()
            with db.engine.connect() as connection:
                rows = connection.exec_driver_sql(
                    "SELECT id, state, classification, rationale FROM findings ORDER BY id"
                ).all()
            assert [tuple(r) for r in rows] == [
                (1, "declined", "not_a_checklist_matter", "kept"),
                (2, "accepted", None, "kept"),
                (3, "open", None, "kept"),
            ]
    finally:
        dispose(app)

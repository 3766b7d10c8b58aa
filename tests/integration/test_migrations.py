"""Migrations build the whole schema from empty, go back down, and match the models (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from gatekeeper.db.base import db
from gatekeeper.db.models import Base
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

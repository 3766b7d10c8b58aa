"""A whole-database snapshot a test can go back to, many times, in a fraction of a rebuild.

The state machine restores one before every example: examples then start from the same rows
(so hypothesis replays them faithfully) and the database does not grow with the run, which
kept the deep profile from ever finishing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from gatekeeper.db.base import db
from gatekeeper.services import head_witness


@dataclass
class Snapshot:
    engine: sa.Engine
    _sqlite: sqlite3.Connection | None = None
    _rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def take(cls, engine: sa.Engine) -> Snapshot:
        db.session.remove()
        snapshot = cls(engine)
        if engine.dialect.name == "sqlite":
            snapshot._sqlite = sqlite3.connect(":memory:", check_same_thread=False)
            with _live(engine) as live:
                live.backup(snapshot._sqlite)
        else:
            with engine.connect() as connection:
                snapshot._rows = {
                    table.name: [dict(r) for r in connection.execute(table.select()).mappings()]
                    for table in db.metadata.sorted_tables
                }
        return snapshot

    def restore(self, *, witnessed: bool = True) -> None:
        """Put the rows back; `witnessed` also moves this host's audit witness back to them, as
        `audit accept-restore` does, for tests that go back on purpose (and not to attack)."""
        self._put_back()
        if witnessed:
            head_witness.witness_of(self.engine).reset(self.engine)

    def _put_back(self) -> None:
        db.session.remove()
        if self._sqlite is not None:
            with _live(self.engine) as live:
                self._sqlite.backup(live)
            return
        tables = db.metadata.sorted_tables
        with self.engine.begin() as connection:
            # Replica mode skips triggers, the audit table's append-only guard among them:
            # going back to a snapshot is, like the reset between tests, allowed to rewrite it.
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table in tables:
                if self._rows[table.name]:
                    connection.execute(table.insert(), self._rows[table.name])
                for column in table.primary_key.columns:
                    if column.autoincrement is True or (
                        column.autoincrement == "auto" and isinstance(column.type, sa.Integer)
                    ):
                        connection.execute(
                            sa.text(
                                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                                f'COALESCE(MAX("{column.name}"), 1), MAX("{column.name}") '
                                f'IS NOT NULL) FROM "{table.name}"'
                            ),
                            {"table": table.name, "column": column.name},
                        )


@contextmanager
def _live(engine: sa.Engine) -> Iterator[sqlite3.Connection]:
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert isinstance(connection, sqlite3.Connection)
        yield connection
    finally:
        raw.close()

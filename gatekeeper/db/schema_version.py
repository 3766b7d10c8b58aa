"""Which migration the database is at, against the migrations this code ships with."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class SchemaVersion:
    current: tuple[str, ...]
    expected: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.expected)


@functools.cache
def _heads(directory: str) -> tuple[str, ...]:
    # Read once per process: the migration scripts cannot change under a running app.
    config = Config()
    config.set_main_option("script_location", directory)
    return tuple(sorted(ScriptDirectory.from_config(config).get_heads()))


def schema_version(connection: Connection, directory: str) -> SchemaVersion:
    """The database's migration heads (empty before `db upgrade`) and the code's."""
    current = MigrationContext.configure(connection).get_current_heads()
    return SchemaVersion(tuple(sorted(current)), _heads(directory))

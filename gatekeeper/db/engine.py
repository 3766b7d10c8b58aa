"""Engine behaviour per database: SQLite pragmas, BEGIN IMMEDIATE for write transactions, and
what a database error says about the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

WRITE_OPTION = "gatekeeper_write"


def configure_engine(engine: Engine, *, busy_timeout: float) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so we can choose BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred BEGIN that upgrades later can fail
        # with SQLITE_BUSY without waiting, which would surface as a spurious error.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


@dataclass(frozen=True)
class DatabaseFailure:
    """The database could not answer: why, in one line, and whether it is unreadable (a damaged
    file that retrying will not mend) or only unavailable (locked, unreachable, cut off)."""

    reason: str
    unreadable: bool = False


# SQLite result codes (low byte of the extended code): SQLITE_CORRUPT, SQLITE_NOTADB.
_SQLITE_UNREADABLE = frozenset({11, 26})
# PostgreSQL SQLSTATEs: data_corrupted, index_corrupted.
_POSTGRES_UNREADABLE = frozenset({"XX001", "XX002"})
_REASON_CHARS = 300


def _one_line(error: BaseException) -> str:
    # The first line is the server's message; psycopg adds hints and the statement below it.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else '(no message)'}"[:_REASON_CHARS]


def _unreadable(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_UNREADABLE:
        return True
    return getattr(error, "sqlstate", None) in _POSTGRES_UNREADABLE


def database_failure(error: BaseException) -> DatabaseFailure | None:
    """What `error` says about the database, or None when it is not the database's failure
    (a constraint, a bad query: a bug to report as such)."""
    if isinstance(error, sa.exc.DBAPIError):
        cause: BaseException = error if error.orig is None else error.orig
        if _unreadable(cause):
            return DatabaseFailure(_one_line(cause), unreadable=True)
        if error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError
        ):
            return DatabaseFailure(_one_line(cause))
        return None
    if isinstance(error, sa.exc.TimeoutError):
        return DatabaseFailure("no database connection became free in time")
    return None

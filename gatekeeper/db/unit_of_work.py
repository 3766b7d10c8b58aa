"""The one place that commits: a request or command wraps its work in unit_of_work()."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, scoped_session

from gatekeeper.db.engine import WRITE_OPTION

ORIGIN_KEY = "gatekeeper.origin"


@dataclass(frozen=True)
class Origin:
    """Where a change comes from, for the audit trail: the client's address and user agent."""

    client_address: str | None = None
    user_agent: str | None = None


@contextmanager
def unit_of_work(
    session: Session | scoped_session[Session], *, origin: Origin | None = None
) -> Iterator[Session]:
    """Run a write transaction: commit when the block ends, roll back on any error."""
    if isinstance(session, scoped_session):
        session = session()
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("unit_of_work() started with unflushed changes outside it")
        # A read done earlier in the request holds a deferred transaction; end it so the write
        # transaction starts with the write lock (SQLite) on a fresh snapshot.
        session.rollback()
    session.connection(execution_options={WRITE_OPTION: True})
    session.info[ORIGIN_KEY] = origin or Origin()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(ORIGIN_KEY, None)


@contextmanager
def read_snapshot(session: Session | scoped_session[Session]) -> Iterator[Session]:
    """Run reads that must agree with each other in one read-only transaction that sees a
    single snapshot (REPEATABLE READ on PostgreSQL; a SQLite read transaction in WAL mode sees
    one snapshot from its first read), then end it."""
    if isinstance(session, scoped_session):
        session = session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("read_snapshot() started with unflushed changes outside it")
    if session.in_transaction():
        # End an earlier read so the snapshot is taken now, at the isolation level set below.
        session.rollback()
    options: dict[str, object] = {}
    if session.get_bind().dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    session.connection(execution_options=options)
    try:
        yield session
    finally:
        session.rollback()

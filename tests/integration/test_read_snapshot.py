"""Reads that must agree see one snapshot: a commit made meanwhile shows only after it ends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import read_snapshot, unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit


def _append(clock: FixedClock) -> None:
    """An event committed by another connection, as another process would."""
    with db.engine.begin() as connection:
        seq, head = connection.execute(
            sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).one()
        connection.execute(
            sa.insert(AuditEvent).values(
                seq=seq + 1,
                occurred_at=clock.now(),
                actor="other",
                action="test.event",
                subject="meanwhile",
                details="{}",
                prev_hash=head,
                hash="0" * 64,
            )
        )


def _count(session: sa.orm.Session) -> int:
    found: int = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    return found


def test_a_commit_made_during_the_snapshot_is_not_seen_until_it_ends(
    app: Flask, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        audit.record(session, action="test.event", actor="t", subject="first", now=clock.now())
    with read_snapshot(db.session) as session:
        assert _count(session) == 1
        _append(clock)
        assert _count(session) == 1
        assert audit.latest(session)[0] == 1
    assert _count(db.session) == 2
    db.session.rollback()


def test_the_snapshot_refuses_to_write_on_postgresql(app: Flask, clock: FixedClock) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no read-only transactions; nothing writes in a snapshot")
    with read_snapshot(db.session) as session, pytest.raises(sa.exc.InternalError):
        audit.record(session, action="test.event", actor="t", subject="x", now=clock.now())


def test_unflushed_changes_are_refused(app: Flask) -> None:
    db.session.add(AuditEvent())
    with pytest.raises(RuntimeError, match="unflushed changes"), read_snapshot(db.session):
        pass
    db.session.rollback()

"""What operators watch: the database's side of the metrics, and counts taken only on commit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper import metrics
from gatekeeper.db.models import OutboxMessage
from gatekeeper.services import audit

_WAITING = ("queued", "sending")
_PENDING_KEY = "gatekeeper.metrics_on_commit"


def snapshot(session: Session, now: datetime) -> metrics.Snapshot:
    """Outbox depth, oldest waiting row and dead letters by kind, in one grouped query over the
    rows not yet delivered (sent and moot rows are left out by the state index); then the audit
    chain's head, the one-row read every gate poll makes anyway."""
    rows = session.execute(
        sa.select(
            OutboxMessage.template,
            OutboxMessage.state,
            sa.func.count(),
            sa.func.min(OutboxMessage.created_at),
        )
        .where(OutboxMessage.state.in_((*_WAITING, "dead")))
        .group_by(OutboxMessage.template, OutboxMessage.state)
    ).all()
    waiting: dict[str, int] = {}
    oldest: dict[str, datetime] = {}
    dead: dict[str, int] = {}
    for template, state, count, first in rows:
        if state == "dead":
            dead[template] = count
            continue
        waiting[template] = waiting.get(template, 0) + count
        oldest[template] = min(first, oldest.get(template, first))
    kinds = tuple(
        metrics.OutboxKind(
            kind,
            waiting.get(kind, 0),
            max((now - oldest[kind]).total_seconds(), 0.0) if kind in oldest else 0.0,
            dead.get(kind, 0),
        )
        for kind in sorted({*waiting, *dead})
    )
    chain_length, _ = audit.latest(session)
    session.rollback()
    return metrics.Snapshot(kinds, chain_length)


def on_commit(session: Session, count: Callable[..., None], *args: Any) -> None:
    """Count `count(*args)` once the session's transaction commits, never if it rolls back: a
    sign-off refused by a conflict is not a decision."""
    session.info.setdefault(_PENDING_KEY, []).append((count, args))


@sa.event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count, args in session.info.pop(_PENDING_KEY, []):
        count(*args)


@sa.event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)

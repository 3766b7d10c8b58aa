"""Worker heartbeats: each `gatekeeper worker` process notes when it last made progress, in the
database every host shares, and a process supervisor asks whether a worker is still alive.

A file would say the same only on the host that wrote it; a row works wherever the check runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import WorkerHeartbeat

# Rows of processes gone this long ago are removed by the next beat of any worker.
FORGET_AFTER = timedelta(days=7)
_ID_LENGTH = 64


@dataclass(frozen=True)
class Heartbeat:
    """Who beats: one worker process (`host:pid`) on its host, started at `started_at`."""

    worker_id: str
    host: str
    started_at: datetime


def beat(session: Session, heartbeat: Heartbeat, now: datetime) -> None:
    """Record that the worker is alive now, in the caller's transaction."""
    worker_id = heartbeat.worker_id[:_ID_LENGTH]
    updated = session.execute(
        sa.update(WorkerHeartbeat)
        .where(WorkerHeartbeat.worker_id == worker_id)
        .values(beat_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(updated, "rowcount", 0) == 0:
        session.execute(
            sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER)
        )
        session.add(
            WorkerHeartbeat(
                worker_id=worker_id,
                host=heartbeat.host[:_ID_LENGTH],
                started_at=heartbeat.started_at,
                beat_at=now,
            )
        )


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str


def check(session: Session, *, host: str, max_age: timedelta, now: datetime) -> Health:
    """Healthy when a worker on `host` beat within `max_age`; else why not."""
    newest = session.execute(
        sa.select(WorkerHeartbeat.worker_id, WorkerHeartbeat.beat_at)
        .where(WorkerHeartbeat.host == host[:_ID_LENGTH])
        .order_by(WorkerHeartbeat.beat_at.desc())
        .limit(1)
    ).first()
    if newest is None:
        return Health(False, f"no worker has run on host {host}")
    age = (now - newest.beat_at).total_seconds()
    limit = max_age.total_seconds()
    if age > limit:
        return Health(
            False,
            f"worker {newest.worker_id} last made progress {age:.0f} s ago (limit {limit:.0f} s)",
        )
    return Health(True, f"worker {newest.worker_id} made progress {age:.0f} s ago")

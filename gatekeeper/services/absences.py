"""Absences as the gate reads them: who is away when, in one query."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Absence as AbsenceRow
from gatekeeper.domain.absence import Absence


def ended_after(session: Session, moment: datetime) -> tuple[Absence, ...]:
    """Every absence still running at `moment` or later, oldest first."""
    rows = session.scalars(
        sa.select(AbsenceRow)
        .where(AbsenceRow.ends_at > moment, AbsenceRow.ends_at > AbsenceRow.starts_at)
        .order_by(AbsenceRow.starts_at, AbsenceRow.id)
    )
    return tuple(Absence(r.person, r.starts_at, r.ends_at) for r in rows)

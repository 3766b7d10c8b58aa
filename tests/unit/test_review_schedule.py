"""Scheduled checklist reviews: when one is due, due soon or overdue, and which reminder is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.domain import governance

REVIEWED = datetime(2026, 8, 25, 9, 0, tzinfo=UTC)
DUE = REVIEWED + timedelta(days=90)
LEAD = timedelta(days=14)
TICK = timedelta(microseconds=1)


def test_due_date_is_the_last_review_plus_the_interval() -> None:
    assert governance.review_due_at(REVIEWED, 90) == DUE
    assert governance.review_due_at(None, 90) is None


@pytest.mark.parametrize(
    ("now", "standing", "reminder"),
    [
        (REVIEWED, governance.REVIEW_OK, None),
        (DUE - LEAD - TICK, governance.REVIEW_OK, None),
        (DUE - LEAD, governance.REVIEW_DUE_SOON, governance.AHEAD),
        (DUE - TICK, governance.REVIEW_DUE_SOON, governance.AHEAD),
        (DUE, governance.REVIEW_OVERDUE, governance.OVERDUE),
        (DUE + timedelta(days=400), governance.REVIEW_OVERDUE, governance.OVERDUE),
    ],
)
def test_standing_and_reminder_at_the_boundaries(
    now: datetime, standing: str, reminder: str | None
) -> None:
    assert governance.review_standing(DUE, now, LEAD) == standing
    assert governance.reminder_due(DUE, now, LEAD) == reminder


def test_a_never_approved_checklist_has_no_schedule() -> None:
    assert governance.review_standing(None, DUE, LEAD) == governance.NOT_APPROVED
    assert governance.reminder_due(None, DUE, LEAD) is None


def test_without_lead_time_only_the_overdue_reminder_exists() -> None:
    assert governance.reminder_due(DUE, DUE - TICK, timedelta(0)) is None
    assert governance.reminder_due(DUE, DUE, timedelta(0)) == governance.OVERDUE

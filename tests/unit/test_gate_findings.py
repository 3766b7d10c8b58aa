"""Post-release findings in the gate: untriaged ones older than the configured age are warnings,
never blockers, and they do not change the status or the digest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gatekeeper.domain import gate
from gatekeeper.domain.gate import OpenFinding
from tests.unit.test_gate import (
    APP,
    BOARD,
    NOW,
    OTHER,
    all_signed,
    checklist,
    pinned,
    run,
)

WEEK = timedelta(days=7)
TICK = timedelta(microseconds=1)
REPORTED = NOW - WEEK


@pytest.mark.parametrize(
    ("age", "warns"),
    [(timedelta(0), False), (WEEK - TICK, False), (WEEK, True), (WEEK + timedelta(days=30), True)],
)
def test_an_open_finding_warns_from_the_moment_it_is_old_enough(
    age: timedelta, warns: bool
) -> None:
    finding = OpenFinding("F-3", NOW - age)
    result = run((pinned(open_findings=(finding,)),), all_signed())
    assert result.status == gate.OPEN
    assert result.blockers == ()
    assert [w.code for w in result.warnings] == ([gate.OPEN_FINDING] if warns else [])


def test_the_warning_names_the_finding_the_date_and_the_reviewers() -> None:
    result = run(
        (pinned(open_findings=(OpenFinding("F-3", REPORTED - timedelta(days=2)),)),),
        all_signed(),
    )
    (warning,) = result.warnings
    assert (warning.application, warning.waiting_on) == (APP, (BOARD,))
    assert warning.since == REPORTED - timedelta(days=2)
    assert warning.message == (
        f"finding F-3 on {APP}'s checklist was reported 2026-11-14 and is still open after 9 "
        f"day(s); governance reviewers: {BOARD}"
    )
    assert result.to_dict()["warnings"][0]["code"] == "OPEN_FINDING"


def test_the_age_is_configurable() -> None:
    finding = OpenFinding("F-3", NOW - timedelta(days=1))
    young = run((pinned(open_findings=(finding,)),), all_signed())
    assert young.warnings == ()
    eager = run(
        (pinned(open_findings=(finding,)),), all_signed(), finding_warn_after=timedelta(days=1)
    )
    assert [w.code for w in eager.warnings] == [gate.OPEN_FINDING]


def test_findings_warn_oldest_first_and_leave_the_digest_alone() -> None:
    older, newer = OpenFinding("F-9", REPORTED - WEEK), OpenFinding("F-2", REPORTED)
    signoffs = all_signed()
    with_findings = run((pinned(open_findings=(newer, older)),), signoffs)
    without = run((pinned(),), signoffs)
    assert [w.message.split()[1] for w in with_findings.warnings] == ["F-9", "F-2"]
    assert with_findings.digest == without.digest


def test_findings_warn_even_when_the_application_has_no_approved_checklist() -> None:
    result = run(
        (pinned(checklist=None, reviewers=(), open_findings=(OpenFinding("F-1", REPORTED),)),),
        (),
    )
    assert gate.NO_APPROVED_CHECKLIST in [b.code for b in result.blockers]
    (warning,) = result.warnings
    assert warning.waiting_on == ()
    assert warning.message.endswith("governance reviewers: none")


def test_a_draft_judges_no_application_so_no_finding_warns() -> None:
    result = run((pinned(open_findings=(OpenFinding("F-1", REPORTED),)),), (), state="draft")
    assert result.warnings == ()


def test_findings_sit_next_to_an_overdue_review_warning() -> None:
    result = run(
        (
            pinned(review_due_at=NOW, open_findings=(OpenFinding("F-1", REPORTED),)),
            pinned(checklist(OTHER)),
        ),
        all_signed() + all_signed(OTHER),
        overdue_policy="warn",
    )
    assert result.status == gate.OPEN
    assert [w.code for w in result.warnings] == [gate.OPEN_FINDING, gate.REVIEW_OVERDUE]

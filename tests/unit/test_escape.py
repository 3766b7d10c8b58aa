"""Escape analysis rules: the never-fires flag at its boundary, rates, medians, and the
classification a triage checks."""

from __future__ import annotations

import pytest

from gatekeeper.domain import escape, finding
from gatekeeper.domain.errors import ValidationFailed

ITEMS = {"build.artifacts-from-ci", "security.dependency-scan"}


@pytest.mark.parametrize(
    ("evaluations", "failures", "window", "expected"),
    [
        (20, 0, 20, True),  # exactly the window, all passed
        (19, 0, 20, False),  # not enough releases yet to judge
        (20, 1, 20, False),  # it caught something inside the window
        (1, 0, 1, True),
    ],
)
def test_never_fires_at_the_boundary(
    evaluations: int, failures: int, window: int, expected: bool
) -> None:
    assert escape.never_fires(evaluations, failures, window) is expected


def test_failure_rate_and_median() -> None:
    assert escape.failure_rate(1, 4) == 0.25
    assert escape.failure_rate(0, 0) is None
    assert escape.median_hours([3600.0, 7200.0, 36000.0]) == 2.0
    assert escape.median_hours([]) is None


def test_an_escape_names_an_existing_item() -> None:
    checked = finding.check_classification(
        finding.ESCAPED_PAST, " build.artifacts-from-ci ", "", ITEMS
    )
    assert checked == finding.Triage(
        finding.ACCEPT, finding.ESCAPED_PAST, ("build", "artifacts-from-ci"), ""
    )
    with pytest.raises(ValidationFailed, match="name the checklist item"):
        finding.check_classification(finding.ESCAPED_PAST, " ", "", ITEMS)
    with pytest.raises(ValidationFailed, match=r"items: build\.artifacts-from-ci"):
        finding.check_classification(finding.ESCAPED_PAST, "build.nope", "", ITEMS)
    with pytest.raises(ValidationFailed, match="it had none"):
        finding.check_classification(finding.ESCAPED_PAST, "build.nope", "", ())


def test_other_classes_ignore_an_item_and_one_needs_a_rationale() -> None:
    uncovered = finding.check_classification(finding.UNCOVERED, "build.x", " gap ", ITEMS)
    assert uncovered == finding.Triage(finding.ACCEPT, finding.UNCOVERED, None, "gap")
    with pytest.raises(ValidationFailed, match="not a checklist matter"):
        finding.check_classification(finding.NOT_A_CHECKLIST_MATTER, "", "", ITEMS)
    declined = finding.check_classification(finding.NOT_A_CHECKLIST_MATTER, "", "outage", ITEMS)
    assert declined.action == finding.DECLINE
    with pytest.raises(ValidationFailed, match="classify the finding"):
        finding.check_classification("accept", "", "", ITEMS)


def test_class_labels() -> None:
    assert finding.class_label(finding.UNCOVERED) == "uncovered (a gap)"
    assert finding.class_label(None, finding.OPEN) == "not triaged yet"
    assert finding.class_label(None, finding.ADDRESSED) == "not classified"

"""How long an evaluation stays true when only the clock moves: the basis of the gate cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.domain import gate
from gatekeeper.domain.gate import GateInput, OpenFinding, evaluate, stable_until
from tests.unit.test_gate import NOW, all_signed, gate_input, pinned
from tests.unit.test_gate_properties import SETTINGS, gate_inputs

WEEK = timedelta(days=7)
TICK = timedelta(microseconds=1)


def test_nothing_dated_means_stable_forever() -> None:
    assert stable_until(gate_input((pinned(),), all_signed())) is None


def test_a_review_not_yet_due_ends_stability_when_it_falls_due() -> None:
    due = NOW + timedelta(hours=5)
    gi = gate_input((pinned(review_due_at=due),), all_signed())
    assert stable_until(gi) == due
    assert evaluate(replace(gi, now=due - TICK)) == evaluate(gi)
    assert evaluate(replace(gi, now=due)).status == gate.BLOCKED


def test_a_review_already_overdue_stays_overdue() -> None:
    gi = gate_input((pinned(review_due_at=NOW - timedelta(days=1)),), all_signed())
    assert stable_until(gi) is None


def test_a_young_finding_ends_stability_when_it_starts_to_warn() -> None:
    reported = NOW - timedelta(days=2)
    gi = gate_input((pinned(open_findings=(OpenFinding("F-1", reported),)),), all_signed())
    assert stable_until(gi) == reported + WEEK
    assert evaluate(replace(gi, now=reported + WEEK - TICK)).warnings == ()
    assert [w.code for w in evaluate(replace(gi, now=reported + WEEK)).warnings] == [
        gate.OPEN_FINDING
    ]


def test_a_warning_finding_ends_stability_when_its_age_in_days_goes_up() -> None:
    reported = NOW - timedelta(days=9, hours=3)
    gi = gate_input((pinned(open_findings=(OpenFinding("F-1", reported),)),), all_signed())
    tomorrow = reported + timedelta(days=10)
    assert stable_until(gi) == tomorrow
    assert evaluate(replace(gi, now=tomorrow - TICK)) == evaluate(gi)
    assert "after 10 day(s)" in evaluate(replace(gi, now=tomorrow)).warnings[0].message


def test_the_earliest_moment_of_all_applications_wins() -> None:
    soon, later = NOW + timedelta(hours=1), NOW + timedelta(days=3)
    second = replace(pinned(review_due_at=later), application="ledger")
    first = pinned(open_findings=(OpenFinding("F-2", soon - WEEK),))
    assert stable_until(gate_input((second, first), all_signed())) == soon


findings = st.lists(
    st.builds(
        OpenFinding,
        st.sampled_from(["F-1", "F-2", "F-3"]),
        st.timedeltas(min_value=-timedelta(days=20), max_value=timedelta(days=2)).map(
            lambda offset: NOW + offset
        ),
    ),
    max_size=3,
)


@SETTINGS
@given(
    gi=gate_inputs(),
    extra=st.lists(findings, min_size=3, max_size=3),
    warn_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_the_result_holds_until_the_moment_stable_until_names(
    gi: GateInput,
    extra: list[list[OpenFinding]],
    warn_after: timedelta,
    fraction: float,
) -> None:
    gi = replace(
        gi,
        applications=tuple(
            replace(a, open_findings=tuple(found))
            for a, found in zip(gi.applications, extra, strict=False)
        ),
        finding_warn_after=warn_after,
    )
    until = stable_until(gi)
    horizon = until if until is not None else gi.now + timedelta(days=400)
    assert horizon > gi.now
    # Whole microseconds, rounded down: timedelta * float rounds to nearest and could reach
    # the horizon itself.
    later = gi.now + TICK * int((horizon - gi.now) // TICK * fraction)
    assert evaluate(replace(gi, now=later)) == evaluate(gi)

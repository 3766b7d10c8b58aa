"""The release population's rules: the period, reconciling the audit log with the packages table,
and the separation-of-duties checks as evaluated (including decisions that break them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest

from gatekeeper.domain import population as rules
from gatekeeper.domain.audit import ChainReport
from gatekeeper.domain.checklist import Section
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.gate import GateInput, evaluate
from gatekeeper.domain.population import Period, ReleaseEvent, ReleaseRecord
from tests.unit.test_gate import (
    ANA,
    ASSEMBLER,
    DANA,
    OUTSIDER,
    RAJ,
    SEC,
    all_signed,
    checklist,
    gate_input,
    item,
    pinned,
    signed,
    validated,
)

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30))
AT = datetime(2026, 11, 23, 9, tzinfo=UTC)
DIGEST = "sha256:" + "d" * 64


# --- the period -------------------------------------------------------------------------------


def test_a_period_is_whole_utc_days_with_both_named_days_included() -> None:
    period = rules.period_of("2026-11-01", "2026-11-30")
    assert period == NOVEMBER
    assert period.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert period.contains(period.start)
    assert period.contains(period.end - timedelta(microseconds=1))
    assert not period.contains(period.end)
    assert not period.contains(period.start - timedelta(microseconds=1))
    assert period.to_dict() == {
        "from": "2026-11-01",
        "to": "2026-11-30",
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-12-01T00:00:00+00:00",
        "interval": "[2026-11-01T00:00:00+00:00, 2026-12-01T00:00:00+00:00)",
    }


def test_a_period_of_one_day() -> None:
    period = rules.period_of("2026-11-30", "2026-11-30")
    assert period.end - period.start == timedelta(days=1)


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2026-11-31", "2026-12-01", "from must be a date"),
        ("20261101", "2026-11-30", "from must be a date"),
        ("2026-W45-1", "2026-11-30", "from must be a date"),
        ("2026-11-01", "", "to must be a date"),
        ("2026-11-01", "2026-11-30T00:00", "to must be a date"),
        ("2026-12-01", "2026-11-30", "is before from"),
        ("2026-11-01", "9999-12-31", "to must be before 9999-12-31"),
    ],
)
def test_bad_periods_are_refused(first: str, last: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        rules.period_of(first, last)


# --- reconciling the audit log with the packages table ----------------------------------------


def event(key: str | None = "k", seq: int = 1, **kw: object) -> ReleaseEvent:
    fields: dict[str, object] = {
        "seq": seq,
        "package": key,
        "occurred_at": AT,
        "actor": "ci-release",
        "revision": 2,
        "digest": DIGEST,
    }
    fields.update(kw)
    return ReleaseEvent(**fields)  # type: ignore[arg-type]


def record(key: str = "k", **kw: object) -> ReleaseRecord:
    fields: dict[str, object] = {
        "package": key,
        "state": "released",
        "released_at": AT,
        "released_by": "ci-release",
        "revision": 2,
        "digest": DIGEST,
    }
    fields.update(kw)
    return ReleaseRecord(**fields)  # type: ignore[arg-type]


def codes(reconciled: rules.Reconciled) -> list[tuple[str, str | None]]:
    return [(d.code, d.package) for d in reconciled.discrepancies]


def test_agreeing_sources_give_the_population_and_no_discrepancy() -> None:
    reconciled = rules.reconcile(NOVEMBER, [event("b"), event("a", 2)], [record("a"), record("b")])
    assert reconciled == rules.Reconciled(("a", "b"), ())


def test_what_lies_outside_the_period_or_is_not_released_is_not_in_the_population() -> None:
    before = AT - timedelta(days=60)
    reconciled = rules.reconcile(
        NOVEMBER,
        [event("old", occurred_at=before), event(None, 2)],
        [
            record("old", released_at=before),
            record("draft", state="draft", released_at=None),
            record("cancelled", state="cancelled", released_at=None),
        ],
    )
    assert reconciled == rules.Reconciled((), ())


def test_a_released_package_without_its_event() -> None:
    reconciled = rules.reconcile(NOVEMBER, [], [record("k")])
    assert reconciled.keys == ("k",)
    (found,) = reconciled.discrepancies
    assert found.code == rules.RELEASE_EVENT_MISSING
    assert found.to_dict() == {
        "code": rules.RELEASE_EVENT_MISSING,
        "package": "k",
        "message": "k is released in the packages table (at 2026-11-23T09:00:00+00:00 by "
        "ci-release), but the audit log has no release event for it",
        "details": {"released_at": "2026-11-23T09:00:00+00:00", "released_by": "ci-release"},
    }


def test_an_event_without_its_package_or_for_a_package_not_released() -> None:
    reconciled = rules.reconcile(
        NOVEMBER,
        [event("ghost"), event("draft", 2)],
        [record("draft", state="in_review", released_at=None)],
    )
    assert reconciled.keys == ("draft", "ghost")
    assert codes(reconciled) == [
        (rules.RELEASED_PACKAGE_MISSING, "draft"),
        (rules.RELEASED_PACKAGE_MISSING, "ghost"),
    ]
    draft, ghost = reconciled.discrepancies
    assert "but the package is in_review" in draft.message
    assert "but no such package exists" in ghost.message
    assert ghost.details == {"seq": 1, "state": None}


def test_a_release_logged_twice() -> None:
    reconciled = rules.reconcile(NOVEMBER, [event(seq=9), event(seq=4)], [record()])
    assert codes(reconciled) == [(rules.DUPLICATE_RELEASE_EVENT, "k")]
    assert reconciled.discrepancies[0].details == {"seqs": [4, 9]}


def test_a_duplicated_event_for_a_missing_package_reports_both() -> None:
    reconciled = rules.reconcile(NOVEMBER, [event(seq=1), event(seq=2)], [])
    assert codes(reconciled) == [
        (rules.DUPLICATE_RELEASE_EVENT, "k"),
        (rules.RELEASED_PACKAGE_MISSING, "k"),
        (rules.RELEASED_PACKAGE_MISSING, "k"),
    ]


@pytest.mark.parametrize(
    ("field", "logged", "stored"),
    [
        ("released_at", {"occurred_at": AT}, {"released_at": AT + timedelta(seconds=1)}),
        ("released_by", {"actor": "ci-release"}, {"released_by": "mallory"}),
        ("revision", {"revision": 2}, {"revision": 3}),
        ("digest", {"digest": None}, {"digest": DIGEST}),
    ],
)
def test_sources_that_disagree_name_each_field(
    field: str, logged: dict[str, object], stored: dict[str, object]
) -> None:
    reconciled = rules.reconcile(NOVEMBER, [event(**logged)], [record(**stored)])
    (found,) = reconciled.discrepancies
    assert found.code == rules.RELEASE_RECORDS_DISAGREE
    assert found.message.endswith(f"the release of k: {field}")
    assert list(found.details["differences (audit log, packages table)"]) == [field]


def test_an_event_outside_the_period_of_a_package_released_in_it_disagrees() -> None:
    early = AT - timedelta(days=60)
    reconciled = rules.reconcile(NOVEMBER, [event(occurred_at=early)], [record()])
    assert codes(reconciled) == [(rules.RELEASE_RECORDS_DISAGREE, "k")]


def test_a_broken_chain_is_a_discrepancy_an_intact_one_is_not() -> None:
    assert rules.chain_discrepancy(ChainReport(True, 5, "h")) is None
    broken = rules.chain_discrepancy(ChainReport(False, 3, "h", 3, "content does not match"))
    assert broken is not None
    assert broken.code == rules.AUDIT_CHAIN_BROKEN
    assert broken.package is None
    assert broken.details == {"first_bad_seq": 3, "problem": "content does not match"}
    assert "broken at event 3" in broken.message


# --- separation of duties as evaluated -------------------------------------------------------


def checks(gate: GateInput, counted: Iterable[int] | None = None) -> dict[str, rules.DutyCheck]:
    """The checks against what the gate counted, or against `counted` when given."""
    ids = evaluate(gate).counted if counted is None else counted
    return {c.rule: c for c in rules.duty_checks(gate, ids)}


def test_a_clean_release_passes_every_check_and_says_what_was_evaluated() -> None:
    found = checks(gate_input(signoffs=all_signed()))
    assert list(found) == [
        rules.ASSEMBLER_EXCLUDED,
        rules.KEY_USERS_NOT_TECHNICAL_SIGNERS,
        rules.ONE_COUNT_PER_PERSON_PER_ITEM,
        rules.ONLY_LISTED_SIGNERS,
    ]
    assert all(c.passed and not c.violations for c in found.values())
    assert found[rules.ASSEMBLER_EXCLUDED].detail == (
        f"{ASSEMBLER} assembled the package and is not listed as a signer in it"
    )
    assert found[rules.KEY_USERS_NOT_TECHNICAL_SIGNERS].detail == (
        "no key user signs technical items of the same application"
    )
    assert found[rules.ONE_COUNT_PER_PERSON_PER_ITEM].detail.startswith(
        "3 person-requirement pair(s) counted; 0 earlier decision(s)"
    )
    assert found[rules.ONLY_LISTED_SIGNERS].detail.startswith("3 counted decision(s)")
    assert found[rules.ASSEMBLER_EXCLUDED].to_dict() == {
        "rule": rules.ASSEMBLER_EXCLUDED,
        "passed": True,
        "detail": found[rules.ASSEMBLER_EXCLUDED].detail,
        "excluded": [],
        "violations": [],
    }


def test_the_assembler_is_named_as_kept_out_of_what_lists_them() -> None:
    cl = checklist(key_users=(DANA, ANA))
    gate = gate_input(
        applications=(pinned(cl),),
        signoffs=(signed(RAJ), signed(SEC, section="security", item_id="scan"), validated(DANA)),
        assembler=ANA,
    )
    found = checks(gate)[rules.ASSEMBLER_EXCLUDED]
    assert found.passed
    assert found.excluded == ("payments-api: build.artifacts", "payments-api: key-user validation")
    assert "kept out of the 2 requirement(s)" in found.detail


def test_a_counted_decision_of_the_assembler_fails_the_check() -> None:
    own = signed(ASSEMBLER, record_id=901)
    found = checks(gate_input(signoffs=(*all_signed(), own)), counted={own.id})
    assert not found[rules.ASSEMBLER_EXCLUDED].passed
    assert found[rules.ASSEMBLER_EXCLUDED].violations == (901,)
    assert found[rules.ASSEMBLER_EXCLUDED].detail.endswith(
        "; yet 1 decision(s) against the rule counted"
    )
    # The assembler is no listed signer of that item either.
    assert found[rules.ONLY_LISTED_SIGNERS].violations == (901,)


def test_key_users_who_sign_technical_items_are_kept_out_and_a_counted_one_fails() -> None:
    cl = checklist(key_users=(DANA, SEC))
    own = validated(SEC, record_id=902)
    gate = gate_input(applications=(pinned(cl),), signoffs=(*all_signed(), own))
    evaluated = checks(gate)[rules.KEY_USERS_NOT_TECHNICAL_SIGNERS]
    assert evaluated.passed
    assert evaluated.excluded == (f"payments-api: {SEC}",)
    assert "1 key user(s) also sign technical items" in evaluated.detail
    forced = checks(gate, counted={own.id})[rules.KEY_USERS_NOT_TECHNICAL_SIGNERS]
    assert not forced.passed
    assert forced.violations == (902,)


def test_a_person_counts_once_and_their_superseded_decision_is_reported() -> None:
    first = signed(ANA, "fail", comment="broken", at=AT - timedelta(hours=2), record_id=903)
    later = signed(ANA, at=AT - timedelta(hours=1), record_id=904)
    gate = gate_input(signoffs=(first, *all_signed()[1:], later, signed(ANA, record_id=905)))
    found = checks(gate)[rules.ONE_COUNT_PER_PERSON_PER_ITEM]
    assert found.passed
    assert found.excluded == (f"payments-api: build.artifacts: {ANA}",)
    assert "2 earlier decision(s) were superseded" in found.detail
    twice = checks(gate, counted={903, 904})[rules.ONE_COUNT_PER_PERSON_PER_ITEM]
    assert not twice.passed
    assert twice.violations == (903, 904)


def test_a_counted_decision_from_someone_the_checklist_does_not_name_fails() -> None:
    outsider_item = signed(OUTSIDER, record_id=906)
    outsider_user = validated(OUTSIDER, record_id=907)
    unknown_item = signed(ANA, section="build", item_id="no-such-item", record_id=908)
    gate = gate_input(signoffs=(*all_signed(), outsider_item, outsider_user, unknown_item))
    assert checks(gate)[rules.ONLY_LISTED_SIGNERS].passed
    forced = checks(gate, counted={906, 907, 908})[rules.ONLY_LISTED_SIGNERS]
    assert not forced.passed
    assert forced.violations == (906, 907, 908)


def test_applications_without_a_checklist_are_left_out_of_the_checks() -> None:
    gate = gate_input(
        applications=(pinned(), pinned(None, application="ledger", checklist=None)),
        signoffs=(*all_signed(), signed(ANA, app="ledger", record_id=909)),
    )
    found = checks(gate, counted={909})
    assert all(c.passed for c in found.values())


def test_requirements_are_named_by_section_and_item_or_as_key_user_validation() -> None:
    assert rules.requirement_of(signed(ANA)) == "build.artifacts"
    assert rules.requirement_of(validated(DANA)) == "key-user validation"


def test_the_assembler_listed_in_one_of_several_sections() -> None:
    cl = checklist(
        sections=(
            Section("build", "Build", (item("artifacts", ANA, RAJ),)),
            Section("ops", "Operations", (item("rollback", ASSEMBLER, SEC),)),
        )
    )
    found = checks(gate_input(applications=(pinned(cl),)))[rules.ASSEMBLER_EXCLUDED]
    assert found.excluded == ("payments-api: ops.rollback",)

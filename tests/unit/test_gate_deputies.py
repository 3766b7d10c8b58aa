"""Deputies and absences in the gate: who stands in for an away person, what counts, what
blocks (SIGNER_AWAY), and the moments the gate moves on its own when people leave and return."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.domain import gate
from gatekeeper.domain.absence import Absence, away_until, boundaries, check_interval
from gatekeeper.domain.checklist import Section
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.gate import evaluate, stable_until
from tests.unit.test_gate import (
    ANA,
    ASSEMBLER,
    DANA,
    KIM,
    LEE,
    NOW,
    RAJ,
    SEC,
    checklist,
    codes,
    gate_input,
    item,
    only,
    pinned,
    requirement,
    run,
)
from tests.unit.test_gate import signed as signed_by_self
from tests.unit.test_gate import validated as validated_by_self

TICK = timedelta(microseconds=1)
DEPUTY = "deputy@example.com"
SECOND = "second-deputy@example.com"
UNTIL = datetime(2026, 12, 20, tzinfo=UTC)


def away(
    person: str, starts: datetime = NOW - timedelta(days=1), ends: datetime = UNTIL
) -> Absence:
    return Absence(person, starts, ends)


def with_deputies(**kw: object) -> gate.PinnedApplication:
    """SEC alone signs the scan; DANA validates; deputies as given (email → tuple)."""
    deputies = kw.pop("deputies", {})
    cl = replace(checklist(**kw), deputies=deputies)  # type: ignore[arg-type]
    return pinned(cl)


def signed(
    signer: str, *args: str, on_behalf_of: str | None = None, **kw: object
) -> gate.SignoffRecord:
    record = signed_by_self(signer, *args, **kw)  # type: ignore[arg-type]
    return replace(record, on_behalf_of=on_behalf_of)


def validated(signer: str, *, on_behalf_of: str | None = None, **kw: object) -> gate.SignoffRecord:
    return replace(validated_by_self(signer, **kw), on_behalf_of=on_behalf_of)  # type: ignore[arg-type]


def scan(signer: str, *args: str, **kw: object) -> gate.SignoffRecord:
    return signed(signer, *args, section="security", item_id="scan", **kw)


BASE = (signed(ANA), validated(DANA))


def test_the_interval_rules() -> None:
    check_interval(NOW, NOW + TICK, "")
    with pytest.raises(ValidationFailed, match="end after"):
        check_interval(NOW, NOW, "")
    with pytest.raises(ValidationFailed, match="limited"):
        check_interval(NOW, NOW + TICK, "x" * 501)


def test_away_until_and_boundaries() -> None:
    first = Absence(SEC, NOW, NOW + timedelta(days=2))
    overlapping = Absence(SEC, NOW + timedelta(days=1), NOW + timedelta(days=5))
    assert away_until([first], SEC, NOW - TICK) is None
    assert away_until([first], SEC, NOW) == NOW + timedelta(days=2)
    assert away_until([first, overlapping], SEC, NOW + timedelta(days=1)) == NOW + timedelta(days=5)
    assert away_until([first], ANA, NOW) is None
    assert away_until([first], SEC, NOW + timedelta(days=2)) is None
    assert boundaries([first], NOW) == [NOW + timedelta(days=2)]
    assert boundaries([first], NOW - TICK) == [NOW, NOW + timedelta(days=2)]


def test_an_away_signer_without_a_deputy_blocks_the_moment_it_is_known() -> None:
    result = run((with_deputies(),), BASE, absences=(away(SEC),))
    assert result.status == gate.BLOCKED
    blocker = only(result, gate.SIGNER_AWAY)
    assert blocker.message == (
        "sec-oncall@example.com is away until 2026-12-20 and checklist payments-api v7 names "
        "no deputy"
    )
    assert blocker.waiting_on == (SEC,)
    assert blocker.blocks
    # Nobody else can sign the scan, so there is nobody to wait on: no ITEM_PENDING.
    assert requirement(result, "security", "scan") == []


def test_an_absence_that_has_not_started_does_not_count_yet() -> None:
    future = away(SEC, NOW + timedelta(days=1), NOW + timedelta(days=3))
    result = run((with_deputies(),), BASE, absences=(future,))
    assert gate.SIGNER_AWAY not in codes(result)
    assert result.status == gate.PENDING


def test_a_deputy_is_waited_on_instead_of_the_away_person() -> None:
    result = run((with_deputies(deputies={SEC: (DEPUTY,)}),), BASE, absences=(away(SEC),))
    assert result.status == gate.PENDING
    (pending,) = requirement(result, "security", "scan")
    assert pending.waiting_on == (DEPUTY,)


def test_a_deputys_sign_off_counts_for_the_person() -> None:
    records = (*BASE, scan(DEPUTY, on_behalf_of=SEC))
    result = run((with_deputies(deputies={SEC: (DEPUTY,)}),), records, absences=(away(SEC),))
    assert result.status == gate.OPEN
    # It still counts once the person is back.
    assert run((with_deputies(deputies={SEC: (DEPUTY,)}),), records).status == gate.OPEN


def test_a_sign_off_for_someone_by_a_person_the_checklist_does_not_name_never_counts() -> None:
    records = (*BASE, scan(KIM, on_behalf_of=SEC))
    result = run((with_deputies(deputies={SEC: (DEPUTY,)}),), records, absences=(away(SEC),))
    assert result.status == gate.PENDING
    assert requirement(result, "security", "scan")[0].waiting_on == (DEPUTY,)


def test_the_assembler_never_stands_in() -> None:
    app = with_deputies(deputies={SEC: (ASSEMBLER,)})
    records = (*BASE, scan(ASSEMBLER, on_behalf_of=SEC))
    result = run((app,), records, absences=(away(SEC),))
    assert "can sign in their place now (rm@example.com)" in only(result, gate.SIGNER_AWAY).message


def test_an_away_deputy_cannot_stand_in_either() -> None:
    app = with_deputies(deputies={SEC: (DEPUTY,)})
    result = run((app,), BASE, absences=(away(SEC), away(DEPUTY)))
    assert only(result, gate.SIGNER_AWAY).code == gate.SIGNER_AWAY


def test_an_away_signer_blocks_only_when_the_others_cannot_make_the_quorum() -> None:
    # ANA or RAJ signs the artifacts (quorum 1): RAJ away without a deputy changes nothing.
    result = run((with_deputies(),), (scan(SEC), validated(DANA)), absences=(away(RAJ),))
    assert result.status == gate.PENDING
    assert requirement(result, "build", "artifacts")[0].waiting_on == (ANA,)
    both = gate_input((with_deputies(),), (scan(SEC), validated(DANA)))
    result = evaluate(replace(both, absences=(away(RAJ), away(ANA))))
    assert [b.waiting_on for b in result.blockers if b.code == gate.SIGNER_AWAY] == [(ANA,), (RAJ,)]


def test_one_blocker_per_away_person_and_application() -> None:
    sections = (Section("security", "Security", (item("scan", SEC), item("pen-test", SEC))),)
    result = run((with_deputies(sections=sections),), (validated(DANA),), absences=(away(SEC),))
    assert codes(result).count(gate.SIGNER_AWAY) == 1


def test_a_deputy_never_counts_twice_in_one_requirement() -> None:
    # LEE deputises for both ANA and RAJ on an item needing both: one human, one sign-off.
    sections = (Section("build", "Build", (item("artifacts", ANA, RAJ, quorum="all"),)),)
    app = with_deputies(sections=sections, deputies={ANA: (LEE,), RAJ: (LEE,)})
    records = (signed(LEE, on_behalf_of=ANA), signed(LEE, on_behalf_of=RAJ), validated(DANA))
    result = run((app,), records, absences=(away(ANA), away(RAJ)))
    assert result.signed == 2  # one of two for the item, plus the validation
    assert result.status == gate.PENDING


def test_a_signer_of_the_item_cannot_also_fill_an_away_colleagues_place() -> None:
    sections = (Section("build", "Build", (item("artifacts", ANA, RAJ, quorum="all"),)),)
    app = with_deputies(sections=sections, deputies={ANA: (RAJ,)})
    records = (signed(RAJ), signed(RAJ, on_behalf_of=ANA), validated(DANA))
    result = run((app,), records, absences=(away(ANA),))
    assert result.status == gate.BLOCKED
    assert only(result, gate.SIGNER_AWAY).waiting_on == (ANA,)


def test_a_key_users_deputy_validates_for_them() -> None:
    app = with_deputies(deputies={DANA: (DEPUTY,)})
    records = (signed(ANA), scan(SEC), validated(DEPUTY, on_behalf_of=DANA))
    assert run((app,), records, absences=(away(DANA),)).status == gate.OPEN


def test_a_technical_signer_never_validates_as_a_deputy() -> None:
    # Separation of duties holds for deputies: SEC signs the scan, so cannot validate for DANA.
    app = with_deputies(deputies={DANA: (SEC,)})
    records = (signed(ANA), scan(SEC), validated(SEC, on_behalf_of=DANA))
    result = run((app,), records, absences=(away(DANA),))
    assert result.status == gate.BLOCKED
    assert "away until 2026-12-20" in only(result, gate.SIGNER_AWAY).message


def test_an_engineers_deputy_never_validates_either() -> None:
    app = with_deputies(deputies={SEC: (DEPUTY,), DANA: (DEPUTY,)})
    records = (signed(ANA), scan(DEPUTY, on_behalf_of=SEC), validated(DEPUTY, on_behalf_of=DANA))
    result = run((app,), records, absences=(away(SEC), away(DANA)))
    assert gate.SIGNER_AWAY in codes(result)


def test_a_key_user_never_signs_an_item_as_a_deputy() -> None:
    app = with_deputies(deputies={SEC: (DANA,)})
    records = (*BASE, scan(DANA, on_behalf_of=SEC))
    assert run((app,), records, absences=(away(SEC),)).status == gate.BLOCKED


def test_the_persons_own_later_decision_replaces_the_deputys() -> None:
    app = with_deputies(deputies={SEC: (DEPUTY,)})
    early = scan(DEPUTY, on_behalf_of=SEC, at=NOW - timedelta(hours=2))
    later = scan(SEC, "fail", comment="found one", at=NOW - timedelta(hours=1))
    result = run((app,), (*BASE, early, later))
    assert codes(result) == [gate.ITEM_FAILED]


def test_a_failed_item_with_the_signer_away_does_not_also_wait() -> None:
    sections = (Section("build", "Build", (item("artifacts", ANA, RAJ, quorum="all"),)),)
    app = with_deputies(sections=sections)
    records = (signed(ANA, "fail", comment="broken"), validated(DANA))
    result = run((app,), records, absences=(away(RAJ),))
    assert sorted(codes(result)) == [gate.ITEM_FAILED, gate.SIGNER_AWAY]


def test_stable_until_names_every_absence_boundary_to_the_microsecond() -> None:
    starts, ends = NOW + timedelta(hours=3), NOW + timedelta(days=2)
    gi = gate_input((with_deputies(),), BASE, absences=(Absence(SEC, starts, ends),))
    assert stable_until(gi) == starts
    assert evaluate(replace(gi, now=starts - TICK)) == evaluate(gi)
    inside = replace(gi, now=starts)
    assert gate.SIGNER_AWAY in codes(evaluate(inside))
    assert stable_until(inside) == ends
    assert evaluate(replace(gi, now=ends - TICK)) == evaluate(inside)
    assert gate.SIGNER_AWAY not in codes(evaluate(replace(gi, now=ends)))
    assert stable_until(replace(gi, now=ends)) is None


def test_the_record_names_its_principal() -> None:
    assert scan(DEPUTY, on_behalf_of=SEC).principal == SEC
    assert scan(SEC).principal == SEC

"""Emergency mode of the gate: the approvers' quorum and the required items instead of the rest,
which is deferred; separation of duties; the frozen gate of a released emergency; overdue
post-implementation reviews blocking other packages, and their time boundary."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from gatekeeper.domain import gate
from gatekeeper.domain.checklist import Checklist, Emergency
from gatekeeper.domain.gate import EmergencyState, OpenReview, Release, evaluate, stable_until
from tests.unit.test_gate import (
    ANA,
    APP,
    ASSEMBLER,
    DANA,
    NOW,
    RAJ,
    SEC,
    checklist,
    codes,
    gate_input,
    only,
    pinned,
    run,
    signed,
)
from tests.unit.test_gate_deputies import away

BOSS = "incident-commander@example.com"
SRE = "sre-lead@example.com"
LEAD = "web-lead@example.com"
DECLARER = "rm2@example.com"
DECLARED = NOW - timedelta(hours=1)


def capable(*, required: tuple[str, ...] = ("security.scan",), quorum: int = 2) -> Checklist:
    return replace(
        checklist(),
        emergency=Emergency((BOSS, SRE, LEAD), None, quorum, required, 24),
    )


def declared(*approvers: str, declarer: str = DECLARER) -> EmergencyState:
    return EmergencyState(
        declarer,
        DECLARED,
        "checkout is down",
        tuple((a, NOW - timedelta(minutes=5)) for a in approvers),
    )


def emergency_run(
    declaration: EmergencyState, signoffs: tuple[gate.SignoffRecord, ...] = (), **kw: object
) -> gate.GateResult:
    return run((pinned(capable()),), signoffs, emergency=declaration, **kw)


def test_a_normal_gate_says_so() -> None:
    doc = run().to_dict()
    assert (doc["mode"], doc["emergency"], doc["deferred"]) == ("normal", None, [])


def test_an_emergency_waits_on_its_approvers_and_required_items_and_defers_the_rest() -> None:
    result = emergency_run(declared())
    assert result.mode == gate.EMERGENCY
    assert result.status == gate.PENDING
    assert sorted(codes(result)) == ["EMERGENCY_APPROVAL_PENDING", "ITEM_PENDING"]
    assert only(result, gate.ITEM_PENDING).item == "scan"
    approval = only(result, gate.EMERGENCY_APPROVAL_PENDING)
    assert approval.waiting_on == (BOSS, SRE, LEAD)
    assert approval.since == DECLARED
    assert [(d.code, d.item) for d in result.deferred] == [
        (gate.ITEM_PENDING, "artifacts"),
        (gate.USER_VALIDATION_PENDING, None),
    ]


def test_quorum_and_required_items_open_an_emergency() -> None:
    result = emergency_run(declared(BOSS, SRE), (signed(SEC, section="security", item_id="scan"),))
    assert result.status == gate.OPEN
    assert result.blockers == ()
    doc = result.to_dict()
    assert doc["mode"] == "emergency"
    assert doc["emergency"]["reason"] == "checkout is down"
    assert [a["approver"] for a in doc["emergency"]["approvals"]] == [BOSS, SRE]
    assert doc["emergency"]["review"] is None
    assert [d["item"] for d in doc["deferred"]] == ["artifacts", None]
    json.dumps(doc)


def test_the_declarer_and_the_assembler_cannot_approve() -> None:
    result = emergency_run(declared(BOSS, DECLARER, ASSEMBLER, declarer=BOSS))
    approval = only(result, gate.EMERGENCY_APPROVAL_PENDING)
    assert approval.waiting_on == (SRE, LEAD)
    assert "0 of 2" in approval.message


def test_an_approver_counts_once() -> None:
    result = emergency_run(declared(SRE, SRE))
    assert "1 of 2" in only(result, gate.EMERGENCY_APPROVAL_PENDING).message


def test_a_quorum_separation_of_duties_makes_unreachable_blocks() -> None:
    cl = replace(checklist(), emergency=Emergency((BOSS, SRE), None, 2))
    result = run((pinned(cl),), emergency=declared(declarer=BOSS))
    assert result.status == gate.BLOCKED
    assert "only 1 of its 2 emergency approver(s)" in only(result, gate.QUORUM_UNREACHABLE).message


def test_an_application_without_an_emergency_section_cannot_be_approved() -> None:
    result = run(emergency=declared(BOSS, SRE))
    assert only(result, gate.QUORUM_UNREACHABLE).application == APP


def test_someone_away_with_no_deputy_holds_an_emergency_up_only_for_a_required_item() -> None:
    scan = (signed(SEC, section="security", item_id="scan"),)
    result = emergency_run(declared(BOSS, SRE), scan, absences=(away(ANA), away(RAJ), away(DANA)))
    assert result.status == gate.OPEN
    assert sorted(b.waiting_on for b in result.deferred if b.code == gate.SIGNER_AWAY) == [
        (ANA,),
        (DANA,),
        (RAJ,),
    ]
    held = emergency_run(declared(BOSS, SRE), absences=(away(SEC),))
    assert held.status == gate.BLOCKED
    assert only(held, gate.SIGNER_AWAY).waiting_on == (SEC,)


def test_a_failure_is_never_deferred() -> None:
    result = emergency_run(declared(BOSS, SRE), (signed(ANA, "fail", comment="bad tag"),))
    assert result.status == gate.BLOCKED
    assert only(result, gate.ITEM_FAILED).item == "artifacts"


def test_a_missing_checklist_still_blocks_an_emergency() -> None:
    result = run((pinned(None, checklist=None),), emergency=declared(BOSS, SRE))
    assert codes(result) == [gate.NO_APPROVED_CHECKLIST]


def test_emergency_downgrades_the_listed_codes_to_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "EMERGENCY_DOWNGRADED_CODES", frozenset({gate.REVIEW_OVERDUE}))
    due = NOW - timedelta(days=1)
    app = pinned(capable(), review_due_at=due)
    scan = (signed(SEC, section="security", item_id="scan"),)
    emergency = evaluate(gate_input((app,), scan, emergency=declared(BOSS, SRE)))
    assert emergency.status == gate.OPEN
    assert [w.code for w in emergency.warnings] == [gate.REVIEW_OVERDUE]
    normal = evaluate(gate_input((app,), scan))
    assert gate.REVIEW_OVERDUE in codes(normal)


def test_the_emergency_is_in_the_digest() -> None:
    plain = run((pinned(capable()),))
    approved = emergency_run(declared(BOSS))
    more = emergency_run(declared(BOSS, SRE))
    assert len({plain.digest, approved.digest, more.digest}) == 3


def test_a_released_emergency_ignores_the_reviews_sign_offs() -> None:
    released_at = NOW - timedelta(minutes=30)
    scan = signed(SEC, section="security", item_id="scan", at=released_at - timedelta(minutes=1))
    late = signed(RAJ, at=released_at + timedelta(minutes=1))
    state = replace(
        declared(BOSS, SRE),
        review_due_at=released_at + timedelta(hours=24),
        review_waiting_on=(ANA, DANA),
    )
    release = Release(released_at, DECLARER, "sha256:x")
    before = emergency_run(state, (scan,), state="released", release=release)
    after = emergency_run(state, (scan, late), state="released", release=release)
    assert before.to_dict() == after.to_dict()
    assert [d.item for d in after.deferred] == ["artifacts", None]
    review = after.to_dict()["emergency"]["review"]
    assert review == {
        "due_at": (released_at + timedelta(hours=24)).isoformat(),
        "waiting_on": [ANA, DANA],
        "completed_at": None,
    }
    done = replace(state, review_completed_at=NOW)
    shown = emergency_run(done, (scan,), state="released", release=release).to_dict()
    assert shown["emergency"]["review"]["completed_at"] == NOW.isoformat()


OTHER_RELEASE = "2026.11-hotfix"


def with_review(due_offset: timedelta, **kw: object) -> gate.GateInput:
    review = OpenReview(OTHER_RELEASE, NOW + due_offset, (ANA, DANA))
    return gate_input((pinned(open_reviews=(review,)),), **kw)


def test_an_overdue_review_of_another_emergency_blocks_the_application() -> None:
    result = evaluate(with_review(-timedelta(seconds=1)))
    blocker = only(result, gate.POST_IMPLEMENTATION_REVIEW_OVERDUE)
    assert result.status == gate.BLOCKED
    assert blocker.waiting_on == (ANA, DANA)
    assert OTHER_RELEASE in blocker.message
    assert APP in blocker.message


def test_a_review_not_yet_due_only_bounds_the_cache() -> None:
    given = with_review(timedelta(hours=3))
    assert gate.POST_IMPLEMENTATION_REVIEW_OVERDUE not in codes(evaluate(given))
    boundary = stable_until(given)
    assert boundary == NOW + timedelta(hours=3)
    just_before = evaluate(replace(given, now=boundary - timedelta(microseconds=1)))
    assert just_before.to_dict() == evaluate(given).to_dict()
    at = evaluate(replace(given, now=boundary))
    assert gate.POST_IMPLEMENTATION_REVIEW_OVERDUE in codes(at)


def test_a_review_waiting_on_nobody_says_so() -> None:
    review = OpenReview(OTHER_RELEASE, NOW, ())
    result = run((pinned(open_reviews=(review,)),))
    assert (
        "nobody who may still answer"
        in only(result, gate.POST_IMPLEMENTATION_REVIEW_OVERDUE).message
    )


def test_released_packages_are_not_blocked_by_reviews() -> None:
    given = with_review(-timedelta(hours=1), state="released")
    assert gate.POST_IMPLEMENTATION_REVIEW_OVERDUE not in codes(evaluate(given))
    assert stable_until(with_review(timedelta(hours=1), state="released")) is None


def test_the_review_waits_on_what_the_normal_gate_would() -> None:
    released_at = NOW - timedelta(minutes=30)
    state = declared(BOSS, SRE)
    release = Release(released_at, DECLARER, "sha256:x")
    scan = signed(SEC, section="security", item_id="scan", at=released_at - timedelta(minutes=1))
    given = gate_input(
        (pinned(capable()),), (scan,), emergency=state, state="released", release=release
    )
    outstanding = gate.review_outstanding(given)
    assert sorted((b.code, b.item or "") for b in outstanding) == [
        (gate.ITEM_PENDING, "artifacts"),
        (gate.USER_VALIDATION_PENDING, ""),
    ]
    late = (signed(RAJ, at=NOW), gate.SignoffRecord(99, APP, "key_user", DANA, "confirmed", 1, NOW))
    assert gate.review_outstanding(replace(given, signoffs=(scan, *late))) == ()


def test_the_review_is_due_after_the_shortest_time_of_its_applications() -> None:
    short = replace(capable(), emergency=Emergency((BOSS,), None, 1, (), 6))
    assert gate.review_due(NOW, [capable(), short, checklist()]) == NOW + timedelta(hours=6)
    assert gate.review_due(NOW, [checklist()]) == NOW + timedelta(hours=48)

"""The gate, example by example: every blocker code, the status rules, quorums, separation of
duties, carry-forward across revisions, the overdue-review policy, the JSON shape and the digest."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatekeeper.domain import gate
from gatekeeper.domain.checklist import (
    Checklist,
    Governance,
    Item,
    KeyUser,
    Quorum,
    Section,
    UserValidation,
)
from gatekeeper.domain.gate import (
    Blocker,
    GateInput,
    GateResult,
    PinnedApplication,
    SignoffRecord,
    evaluate,
)

APP = "payments-api"
OTHER = "ledger"
PACKAGE = "2026.11-r3"
ASSEMBLER = "rm@example.com"
ANA = "ana@example.com"
RAJ = "raj@example.com"
SEC = "sec-oncall@example.com"
DANA = "dana@example.com"
LEE = "lee@example.com"
KIM = "kim@example.com"
BOARD = "release-board@example.com"
OUTSIDER = "mallory@example.com"

REQUESTED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SHA = "a" * 64

_ids = itertools.count(1)


def item(item_id: str, *signers: str, quorum: Quorum = 1) -> Item:
    return Item(item_id, f"text of {item_id}", tuple(signers), quorum=quorum)


def checklist(
    application: str = APP,
    *,
    sections: tuple[Section, ...] | None = None,
    key_users: tuple[str, ...] = (DANA,),
    user_quorum: Quorum = "all",
    version: int = 7,
) -> Checklist:
    """By default: build/artifacts by ANA or RAJ (quorum 1), security/scan by SEC, key user DANA."""
    if sections is None:
        sections = (
            Section("build", "Build", (item("artifacts", ANA, RAJ),)),
            Section("security", "Security", (item("scan", SEC),)),
        )
    return Checklist(
        application=application,
        title=application.title(),
        version=version,
        owner="team@example.com",
        governance=Governance(90, (BOARD,)),
        sections=sections,
        user_validation=UserValidation(
            tuple(KeyUser(email, email.split("@")[0].title()) for email in key_users),
            ("Run the end-of-day report", "Refund a card payment"),
            user_quorum,
        ),
    )


def pinned(cl: Checklist | None = None, **kw: Any) -> PinnedApplication:
    cl = checklist() if cl is None else cl
    fields: dict[str, Any] = {
        "application": cl.application,
        "version_label": "1.4.0",
        "checklist": cl,
        "checklist_sha256": SHA,
        "reviewers": cl.governance.reviewers,
        "requested_at": REQUESTED,
    }
    fields.update(kw)
    return PinnedApplication(**fields)


def signed(
    signer: str,
    decision: str = "pass",
    *,
    section: str = "build",
    item_id: str = "artifacts",
    app: str = APP,
    revision: int = 1,
    at: datetime | None = None,
    comment: str = "",
    record_id: int | None = None,
) -> SignoffRecord:
    return SignoffRecord(
        id=next(_ids) if record_id is None else record_id,
        application=app,
        kind="item",
        signer=signer,
        decision=decision,
        revision=revision,
        signed_at=at or REQUESTED + timedelta(hours=1),
        section_id=section,
        item_id=item_id,
        comment=comment,
    )


def validated(
    signer: str,
    decision: str = "confirmed",
    *,
    app: str = APP,
    revision: int = 1,
    at: datetime | None = None,
    comment: str = "",
    record_id: int | None = None,
) -> SignoffRecord:
    return SignoffRecord(
        id=next(_ids) if record_id is None else record_id,
        application=app,
        kind="key_user",
        signer=signer,
        decision=decision,
        revision=revision,
        signed_at=at or REQUESTED + timedelta(hours=2),
        comment=comment,
    )


def all_signed(app: str = APP, revision: int = 1) -> tuple[SignoffRecord, ...]:
    """Everything the default checklist needs, signed at `revision`."""
    return (
        signed(ANA, app=app, revision=revision),
        signed(SEC, section="security", item_id="scan", app=app, revision=revision),
        validated(DANA, app=app, revision=revision),
    )


def gate_input(
    applications: tuple[PinnedApplication, ...] | None = None,
    signoffs: tuple[SignoffRecord, ...] = (),
    **kw: Any,
) -> GateInput:
    fields: dict[str, Any] = {
        "package": PACKAGE,
        "revision": 1,
        "state": "in_review",
        "assembler": ASSEMBLER,
        "applications": (pinned(),) if applications is None else applications,
        "signoffs": signoffs,
        "now": NOW,
    }
    fields.update(kw)
    return GateInput(**fields)


def run(
    applications: tuple[PinnedApplication, ...] | None = None,
    signoffs: tuple[SignoffRecord, ...] = (),
    **kw: Any,
) -> GateResult:
    return evaluate(gate_input(applications, signoffs, **kw))


def codes(result: GateResult) -> list[str]:
    return [b.code for b in result.blockers]


def only(result: GateResult, code: str) -> Blocker:
    found = [b for b in result.blockers if b.code == code]
    assert len(found) == 1, result.blockers
    return found[0]


def requirement(result: GateResult, section: str | None, item_id: str | None) -> list[Blocker]:
    return [b for b in result.blockers if (b.section, b.item) == (section, item_id)]


# The baseline ---------------------------------------------------------------------------------


def test_everything_signed_is_open_with_nothing_missing() -> None:
    result = run(signoffs=all_signed())
    assert result.status == gate.OPEN
    assert result.blockers == ()
    assert result.warnings == ()
    assert result.waiting_on == ()
    assert (result.signed, result.required) == (3, 3)


def test_nothing_signed_is_pending_on_everyone_asked() -> None:
    result = run()
    assert result.status == gate.PENDING
    assert codes(result) == [gate.USER_VALIDATION_PENDING, gate.ITEM_PENDING, gate.ITEM_PENDING]
    assert result.waiting_on == (ANA, DANA, RAJ, SEC)
    assert (result.signed, result.required) == (0, 3)


# Package-level blockers -----------------------------------------------------------------------


def test_a_draft_waits_on_its_assembler_to_submit() -> None:
    result = run(signoffs=all_signed(), state="draft")
    assert result.status == gate.PENDING
    assert codes(result) == [gate.PACKAGE_NOT_SUBMITTED]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (None, None, None)
    assert blocker.waiting_on == (ASSEMBLER,)
    assert blocker.since is None
    assert PACKAGE in blocker.message
    assert "draft" in blocker.message
    assert "submit" in blocker.message
    assert not blocker.blocks


def test_a_draft_is_not_judged_application_by_application() -> None:
    # Submitting pins the checklists; until then nothing per application is reported or counted.
    missing = pinned(None, application=OTHER, checklist=None, checklist_approved=False)
    result = run((pinned(review_due_at=NOW), missing), state="draft")
    assert result.status == gate.PENDING
    assert codes(result) == [gate.PACKAGE_NOT_SUBMITTED]
    assert (result.signed, result.required, result.applications) == (0, 0, ())
    assert result.warnings == ()


def test_a_cancelled_package_is_blocked_whatever_was_signed() -> None:
    result = run(signoffs=all_signed(), state="cancelled")
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.PACKAGE_CANCELLED]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (None, None, None)
    assert (blocker.waiting_on, blocker.since) == ((), None)
    assert blocker.message == f"package {PACKAGE} was cancelled"
    assert blocker.blocks


def test_a_released_package_keeps_the_gate_it_was_released_with() -> None:
    # There is no blocker code for "released": the gate stays open so CI can re-check it.
    assert run(signoffs=all_signed(), state="released").status == gate.OPEN


RELEASE = gate.Release(released_at=NOW, released_by="ci-release", digest="sha256:" + "e" * 64)


@pytest.mark.parametrize("state", ["draft", "in_review", "released", "cancelled"])
def test_the_result_carries_the_package_state(state: str) -> None:
    release = RELEASE if state == "released" else None
    result = run(signoffs=all_signed(), state=state, release=release)
    assert (result.state, result.release) == (state, release)
    doc = result.to_dict()
    assert doc["state"] == state
    assert doc["release"] == (
        {
            "released_at": NOW.isoformat(),
            "released_by": "ci-release",
            "digest": "sha256:" + "e" * 64,
        }
        if release
        else None
    )


def test_a_review_falling_due_after_the_release_is_only_a_warning() -> None:
    # Re-deploying what was released re-ships nothing new: the overdue review is for the next
    # release of the application, not this one.
    result = run((pinned(review_due_at=NOW),), all_signed(), state="released", release=RELEASE)
    assert result.status == gate.OPEN
    assert [w.code for w in result.warnings] == [gate.REVIEW_OVERDUE]


@pytest.mark.parametrize(
    ("state", "applications", "shown"),
    [
        ("released", None, "released"),
        ("released", (), "blocked"),  # a released gate that no longer holds says so
        ("in_review", None, "open"),
        ("cancelled", None, "blocked"),
    ],
)
def test_the_shown_status_says_released_while_a_released_gate_holds(
    state: str, applications: tuple[PinnedApplication, ...] | None, shown: str
) -> None:
    assert run(applications, all_signed(), state=state).shown_status == shown


def test_an_empty_package_is_blocked() -> None:
    result = run(applications=())
    assert result.status == gate.BLOCKED
    blocker = only(result, gate.PACKAGE_EMPTY)
    assert (blocker.application, blocker.section, blocker.item) == (None, None, None)
    assert (blocker.waiting_on, blocker.since) == ((), None)
    assert blocker.message == f"package {PACKAGE} has no applications"
    assert (result.signed, result.required, result.applications) == (0, 0, ())


def test_an_empty_draft_is_blocked_not_pending() -> None:
    result = run(applications=(), state="draft")
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.PACKAGE_EMPTY, gate.PACKAGE_NOT_SUBMITTED]


# Governance blockers --------------------------------------------------------------------------


def test_an_application_without_an_approved_checklist_is_blocked() -> None:
    ledger = pinned(checklist(OTHER))
    missing = pinned(None, application=APP, checklist=None, checklist_sha256=None)
    result = run((missing, ledger), all_signed(app=OTHER))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.NO_APPROVED_CHECKLIST]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert (blocker.waiting_on, blocker.since) == ((), None)
    assert blocker.message.startswith(f"{APP} has no approved checklist version")
    assert "governance reviewer must approve" in blocker.message
    progress = {p.application: p for p in result.applications}
    assert progress[APP].checklist_version is None
    assert (progress[APP].signed, progress[APP].required, progress[APP].carried_forward) == (
        0,
        0,
        0,
    )
    assert (progress[OTHER].signed, progress[OTHER].required) == (3, 3)


def test_a_checklist_version_not_approved_blocks_and_waits_on_its_reviewers() -> None:
    result = run((pinned(checklist_approved=False),), all_signed())
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.CHECKLIST_NOT_APPROVED]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert blocker.waiting_on == (BOARD,)
    assert blocker.since is None
    assert blocker.message == f"checklist version 7 of {APP} is not approved"
    assert blocker.blocks


DUE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (DUE - timedelta(days=30), False),
        (DUE - timedelta(microseconds=1), False),
        (DUE, True),
        (DUE + timedelta(microseconds=1), True),
        (DUE + timedelta(days=400), True),
    ],
)
def test_a_review_is_overdue_from_the_moment_it_is_due(now: datetime, overdue: bool) -> None:
    result = run((pinned(review_due_at=DUE),), all_signed(), now=now)
    if overdue:
        assert result.status == gate.BLOCKED
        assert codes(result) == [gate.REVIEW_OVERDUE]
    else:
        assert result.status == gate.OPEN
        assert result.blockers == ()
    assert result.warnings == ()


def test_an_overdue_review_blocker_names_the_reviewers_and_the_due_date() -> None:
    result = run((pinned(review_due_at=DUE),), all_signed(), now=DUE)
    blocker = only(result, gate.REVIEW_OVERDUE)
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert blocker.waiting_on == (BOARD,)
    assert blocker.since == DUE
    assert blocker.message == (
        f"the governance review of {APP}'s checklist was due 2026-11-23; reviewers: {BOARD}"
    )


def test_under_the_warn_policy_an_overdue_review_is_a_warning() -> None:
    result = run((pinned(review_due_at=DUE),), all_signed(), now=DUE, overdue_policy="warn")
    assert result.status == gate.OPEN
    assert result.blockers == ()
    assert [w.code for w in result.warnings] == [gate.REVIEW_OVERDUE]
    assert result.warnings[0].waiting_on == (BOARD,)
    assert result.to_dict()["warnings"][0]["code"] == gate.REVIEW_OVERDUE


def test_under_the_warn_policy_a_review_not_yet_due_is_not_even_a_warning() -> None:
    result = run(
        (pinned(review_due_at=DUE),),
        all_signed(),
        now=DUE - timedelta(microseconds=1),
        overdue_policy="warn",
    )
    assert (result.status, result.warnings) == (gate.OPEN, ())


def test_a_checklist_never_reviewed_has_no_due_date() -> None:
    result = run((pinned(review_due_at=None),), all_signed(), now=NOW + timedelta(days=3650))
    assert result.status == gate.OPEN


# Item blockers --------------------------------------------------------------------------------


def test_an_unsigned_item_is_pending_on_its_signers() -> None:
    result = run(signoffs=all_signed()[1:])
    assert result.status == gate.PENDING
    blocker = only(result, gate.ITEM_PENDING)
    assert (blocker.application, blocker.section, blocker.item) == (APP, "build", "artifacts")
    assert blocker.waiting_on == (ANA, RAJ)
    assert blocker.since == REQUESTED
    assert blocker.message == (
        f"item 'artifacts' of {APP}: 0 of 1 required sign-offs, waiting on {ANA}, {RAJ}"
    )
    assert not blocker.blocks


def test_a_pending_item_of_an_unsubmitted_package_has_no_since() -> None:
    result = run((pinned(requested_at=None),), all_signed()[1:])
    assert only(result, gate.ITEM_PENDING).since is None


def test_a_failed_item_blocks_and_names_who_failed_it_and_why() -> None:
    failed_at = REQUESTED + timedelta(hours=5)
    records = (
        signed(SEC, "fail", section="security", item_id="scan", at=failed_at, comment="CVE-1"),
        signed(ANA),
        validated(DANA),
    )
    result = run(signoffs=records)
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.ITEM_FAILED]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, "security", "scan")
    assert blocker.waiting_on == ()
    assert blocker.since == failed_at
    assert blocker.message == f"{SEC} failed item 'scan' of {APP}: CVE-1"
    assert blocker.blocks


def test_a_failure_blocks_even_when_another_signer_met_the_quorum() -> None:
    result = run(signoffs=(*all_signed(), signed(RAJ, "fail", comment="wrong tag")))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.ITEM_FAILED]
    assert result.blockers[0].message == f"{RAJ} failed item 'artifacts' of {APP}: wrong tag"
    assert (result.signed, result.required) == (3, 3)


def test_a_failure_with_others_still_to_sign_is_failed_and_pending() -> None:
    result = run(signoffs=(*all_signed()[1:], signed(ANA, "fail", comment="red")))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.ITEM_FAILED, gate.ITEM_PENDING]
    assert result.blockers[1].waiting_on == (RAJ,)
    assert result.blockers[1].message.endswith(f"0 of 1 required sign-offs, waiting on {RAJ}")


def test_failures_of_one_item_are_reported_per_signer_in_order() -> None:
    three = checklist(sections=(Section("build", "Build", (item("artifacts", RAJ, ANA, SEC),)),))
    records = (signed(RAJ, "fail", comment="r"), signed(ANA, "fail", comment="a"), validated(DANA))
    result = run((pinned(three),), records)
    failed = [b for b in result.blockers if b.code == gate.ITEM_FAILED]
    assert [b.message.split()[0] for b in failed] == [ANA, RAJ]
    assert only(result, gate.ITEM_PENDING).waiting_on == (SEC,)


def test_not_applicable_counts_as_a_sign_off() -> None:
    records = (signed(ANA, "not_applicable", comment="no build change"), *all_signed()[1:])
    assert run(signoffs=records).status == gate.OPEN


def test_the_assembler_alone_cannot_reach_a_quorum() -> None:
    cl = checklist(sections=(Section("build", "Build", (item("artifacts", ASSEMBLER),)),))
    own = signed(ASSEMBLER)
    result = run((pinned(cl),), (own, validated(DANA)))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.QUORUM_UNREACHABLE]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, "build", "artifacts")
    assert (blocker.waiting_on, blocker.since) == ((), None)
    assert blocker.message == (
        f"item 'artifacts' of {APP} needs 1 sign-off(s) but only 0 of its 1 listed signer(s) "
        "may sign (separation of duties)"
    )
    assert (result.signed, result.required) == (1, 2)
    assert own.id not in result.counted


def test_quorum_all_including_the_assembler_is_unreachable() -> None:
    cl = checklist(
        sections=(Section("build", "Build", (item("artifacts", ANA, ASSEMBLER, quorum="all"),)),)
    )
    result = run((pinned(cl),), (signed(ANA), signed(ASSEMBLER), validated(DANA)))
    assert result.status == gate.BLOCKED
    blocker = only(result, gate.QUORUM_UNREACHABLE)
    assert "needs 2 sign-off(s) but only 1 of its 2 listed signer(s) may sign" in blocker.message
    assert (result.signed, result.required) == (2, 3)


def test_the_assembler_is_not_waited_on_and_their_sign_off_does_not_count() -> None:
    cl = checklist(sections=(Section("build", "Build", (item("artifacts", ASSEMBLER, RAJ),)),))
    result = run((pinned(cl),), (signed(ASSEMBLER), validated(DANA)))
    assert result.status == gate.PENDING
    assert only(result, gate.ITEM_PENDING).waiting_on == (RAJ,)
    assert (result.signed, result.required) == (1, 2)
    assert run((pinned(cl),), (signed(ASSEMBLER), signed(RAJ), validated(DANA))).status == (
        gate.OPEN
    )


def test_the_assembler_failing_their_own_item_is_ignored() -> None:
    cl = checklist(sections=(Section("build", "Build", (item("artifacts", ASSEMBLER, RAJ),)),))
    result = run(
        (pinned(cl),), (signed(ASSEMBLER, "fail", comment="x"), signed(RAJ), validated(DANA))
    )
    assert result.status == gate.OPEN


# User validation blockers ---------------------------------------------------------------------


def test_user_validation_is_pending_on_the_key_users() -> None:
    cl = checklist(key_users=(LEE, DANA))
    result = run((pinned(cl),), all_signed()[:2])
    assert result.status == gate.PENDING
    blocker = only(result, gate.USER_VALIDATION_PENDING)
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert blocker.waiting_on == (DANA, LEE)
    assert blocker.since == REQUESTED
    assert blocker.message == (
        f"user validation of {APP}: 0 of 2 required sign-offs, waiting on {DANA}, {LEE}"
    )
    assert not blocker.blocks


def test_a_problem_reported_by_a_key_user_blocks_and_says_what() -> None:
    at = REQUESTED + timedelta(days=1)
    records = (*all_signed()[:2], validated(DANA, "problem", at=at, comment="refund screen 500s"))
    result = run(signoffs=records)
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.USER_PROBLEM_REPORTED]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert (blocker.waiting_on, blocker.since) == ((), at)
    assert blocker.message == f"{DANA} reported a problem with {APP}: refund screen 500s"
    assert blocker.blocks


def test_a_key_user_who_also_signs_technical_items_leaves_the_user_quorum_unreachable() -> None:
    cl = checklist(key_users=(ANA,))
    result = run((pinned(cl),), (signed(RAJ), all_signed()[1], validated(ANA)))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.USER_QUORUM_UNREACHABLE]
    blocker = result.blockers[0]
    assert (blocker.application, blocker.section, blocker.item) == (APP, None, None)
    assert (blocker.waiting_on, blocker.since) == ((), None)
    assert blocker.message == (
        f"user validation of {APP} needs 1 sign-off(s) but only 0 of its 1 listed signer(s) "
        "may sign (separation of duties)"
    )
    assert (result.signed, result.required) == (2, 3)


def test_an_engineer_key_user_does_not_count_but_others_can_still_validate() -> None:
    cl = checklist(key_users=(ANA, DANA), user_quorum=1)
    result = run((pinned(cl),), (signed(RAJ), all_signed()[1], validated(ANA)))
    assert result.status == gate.PENDING
    assert only(result, gate.USER_VALIDATION_PENDING).waiting_on == (DANA,)
    assert run((pinned(cl),), (signed(RAJ), all_signed()[1], validated(DANA))).status == gate.OPEN


def test_an_engineer_of_another_application_may_validate_this_one() -> None:
    ledger = checklist(OTHER, key_users=(SEC,))
    records = (
        *all_signed(),
        signed(ANA, app=OTHER),
        signed(SEC, section="security", item_id="scan", app=OTHER),
        validated(SEC, app=OTHER),
    )
    result = run((pinned(), pinned(ledger)), records)
    assert codes(result) == [gate.USER_QUORUM_UNREACHABLE]  # SEC signs ledger's own scan item
    ledger_only_build = checklist(
        OTHER, key_users=(SEC,), sections=(Section("build", "Build", (item("artifacts", RAJ),)),)
    )
    records = (*all_signed(), signed(RAJ, app=OTHER), validated(SEC, app=OTHER))
    assert run((pinned(), pinned(ledger_only_build)), records).status == gate.OPEN


def test_the_assembler_cannot_validate_as_a_key_user() -> None:
    cl = checklist(key_users=(ASSEMBLER,))
    result = run((pinned(cl),), (*all_signed()[:2], validated(ASSEMBLER)))
    assert codes(result) == [gate.USER_QUORUM_UNREACHABLE]


# Quorums --------------------------------------------------------------------------------------


def one_item(*signers: str, quorum: Quorum) -> Checklist:
    return checklist(
        sections=(Section("build", "Build", (item("artifacts", *signers, quorum=quorum),)),)
    )


@pytest.mark.parametrize(
    ("quorum", "signers_who_passed", "status", "waiting", "count"),
    [
        (1, (), gate.PENDING, (ANA, KIM, RAJ), 0),
        (1, (KIM,), gate.OPEN, (), 1),
        (1, (ANA, RAJ, KIM), gate.OPEN, (), 1),
        (2, (ANA,), gate.PENDING, (KIM, RAJ), 1),
        (2, (ANA, KIM), gate.OPEN, (), 2),
        (2, (ANA, KIM, RAJ), gate.OPEN, (), 2),
        (3, (ANA, KIM), gate.PENDING, (RAJ,), 2),
        ("all", (ANA, KIM), gate.PENDING, (RAJ,), 2),
        ("all", (ANA, KIM, RAJ), gate.OPEN, (), 3),
    ],
)
def test_item_quorum(
    quorum: Quorum,
    signers_who_passed: tuple[str, ...],
    status: str,
    waiting: tuple[str, ...],
    count: int,
) -> None:
    cl = one_item(ANA, RAJ, KIM, quorum=quorum)
    records = (*(signed(s) for s in signers_who_passed), validated(DANA))
    result = run((pinned(cl),), records)
    assert result.status == status
    assert result.waiting_on == waiting
    needed = 3 if quorum == "all" else quorum
    assert (result.signed, result.required) == (count + 1, needed + 1)
    if waiting:
        assert only(result, gate.ITEM_PENDING).message == (
            f"item 'artifacts' of {APP}: {count} of {needed} required sign-offs, "
            f"waiting on {', '.join(waiting)}"
        )


@pytest.mark.parametrize(
    ("quorum", "confirmed_by", "status", "waiting"),
    [
        (1, (), gate.PENDING, (DANA, KIM, LEE)),
        (1, (LEE,), gate.OPEN, ()),
        (2, (LEE,), gate.PENDING, (DANA, KIM)),
        (2, (LEE, KIM), gate.OPEN, ()),
        ("all", (LEE, KIM), gate.PENDING, (DANA,)),
        ("all", (LEE, KIM, DANA), gate.OPEN, ()),
    ],
)
def test_key_user_quorum(
    quorum: Quorum, confirmed_by: tuple[str, ...], status: str, waiting: tuple[str, ...]
) -> None:
    cl = checklist(key_users=(DANA, LEE, KIM), user_quorum=quorum)
    result = run((pinned(cl),), (*all_signed()[:2], *(validated(u) for u in confirmed_by)))
    assert result.status == status
    assert result.waiting_on == waiting
    needed = 3 if quorum == "all" else quorum
    assert (result.signed, result.required) == (2 + min(len(confirmed_by), needed), 2 + needed)


# One person, one vote per item ----------------------------------------------------------------


def test_the_same_person_signing_twice_counts_once() -> None:
    cl = one_item(ANA, RAJ, quorum=2)
    result = run((pinned(cl),), (signed(ANA), signed(ANA), validated(DANA)))
    assert result.status == gate.PENDING
    assert only(result, gate.ITEM_PENDING).waiting_on == (RAJ,)
    assert (result.signed, result.required) == (2, 3)
    assert len(result.counted) == 2  # one of ANA's two records, and DANA's


def test_the_latest_decision_of_a_person_stands() -> None:
    early, late = REQUESTED + timedelta(hours=1), REQUESTED + timedelta(hours=2)
    changed_mind = (signed(ANA, at=early), signed(ANA, "fail", at=late, comment="oops"))
    result = run(signoffs=(*changed_mind, *all_signed()[1:]))
    assert codes(result) == [gate.ITEM_FAILED, gate.ITEM_PENDING]
    recovered = (signed(ANA, "fail", at=early, comment="red"), signed(ANA, at=late))
    assert run(signoffs=(*recovered, *all_signed()[1:])).status == gate.OPEN


def test_a_key_user_may_withdraw_a_problem_report() -> None:
    early, late = REQUESTED + timedelta(hours=1), REQUESTED + timedelta(hours=2)
    records = (*all_signed()[:2], validated(DANA, "problem", at=early, comment="x"))
    assert run(signoffs=(*records, validated(DANA, at=late))).status == gate.OPEN
    assert run(signoffs=(*records, validated(DANA, at=early - timedelta(seconds=1)))).status == (
        gate.BLOCKED
    )


def test_on_the_same_instant_the_later_record_stands() -> None:
    at = REQUESTED + timedelta(hours=1)
    first = signed(ANA, "fail", at=at, comment="x", record_id=10_001)
    second = signed(ANA, at=at, record_id=10_002)
    rest = all_signed()[1:]
    assert run(signoffs=(first, second, *rest)).status == gate.OPEN
    assert run(signoffs=(second, first, *rest)).status == gate.OPEN
    swapped = (replace(first, id=10_002), replace(second, id=10_001), *rest)
    assert run(signoffs=swapped).status == gate.BLOCKED


# Who may count at all -------------------------------------------------------------------------


def test_sign_offs_from_people_not_listed_on_the_item_never_count() -> None:
    records = (signed(OUTSIDER), signed(SEC), signed(DANA), *all_signed()[1:])
    result = run(signoffs=records)
    assert result.status == gate.PENDING
    assert only(result, gate.ITEM_PENDING).waiting_on == (ANA, RAJ)
    assert (result.signed, result.required) == (2, 3)


def test_failures_from_people_not_listed_on_the_item_are_ignored() -> None:
    records = (*all_signed(), signed(OUTSIDER, "fail", comment="I say no"))
    assert run(signoffs=records).status == gate.OPEN


def test_confirmations_from_people_who_are_not_key_users_never_count() -> None:
    records = (*all_signed()[:2], validated(OUTSIDER), validated(ASSEMBLER), validated(LEE))
    result = run(signoffs=records)
    assert result.status == gate.PENDING
    assert only(result, gate.USER_VALIDATION_PENDING).waiting_on == (DANA,)


def test_problems_reported_by_people_who_are_not_key_users_are_ignored() -> None:
    records = (*all_signed(), validated(OUTSIDER, "problem", comment="broken"))
    assert run(signoffs=records).status == gate.OPEN


def test_an_item_sign_off_does_not_count_as_user_validation_and_vice_versa() -> None:
    as_item = signed(DANA, section="", item_id="")
    result = run(signoffs=(*all_signed()[:2], as_item))
    assert only(result, gate.USER_VALIDATION_PENDING).waiting_on == (DANA,)
    as_user = validated(ANA)
    result = run(signoffs=(as_user, *all_signed()[1:]))
    assert only(result, gate.ITEM_PENDING).waiting_on == (ANA, RAJ)


def test_records_of_an_unknown_kind_count_for_nothing() -> None:
    odd = (replace(signed(ANA), kind="reviewer"), replace(validated(DANA), kind="reviewer"))
    result = run(signoffs=(*odd, all_signed()[1]))
    assert result.status == gate.PENDING
    assert result.waiting_on == (ANA, DANA, RAJ)
    assert {r.id for r in odd}.isdisjoint(result.counted)


def test_sign_offs_count_only_for_their_own_item() -> None:
    shared = checklist(
        sections=(
            Section("build", "Build", (item("artifacts", ANA), item("tagged", ANA))),
            Section("release", "Release", (item("artifacts", ANA),)),
        )
    )
    result = run((pinned(shared),), (signed(ANA), validated(DANA)))
    assert [(b.section, b.item) for b in result.blockers] == [
        ("build", "tagged"),
        ("release", "artifacts"),
    ]
    assert (result.signed, result.required) == (2, 4)


def test_sign_offs_for_unknown_items_or_applications_are_ignored() -> None:
    records = (
        *all_signed(),
        signed(ANA, "fail", item_id="removed-item", comment="x"),
        signed(ANA, "fail", app="no-such-app", comment="x"),
        validated(DANA, "problem", app="no-such-app", comment="x"),
    )
    result = run(signoffs=records)
    assert result.status == gate.OPEN
    assert len(result.counted) == 3


def test_sign_offs_count_only_for_their_own_application() -> None:
    result = run((pinned(), pinned(checklist(OTHER))), all_signed(app=OTHER))
    assert result.status == gate.PENDING
    assert {b.application for b in result.blockers} == {APP}
    progress = {p.application: (p.signed, p.required) for p in result.applications}
    assert progress == {APP: (0, 3), OTHER: (3, 3)}


# Revisions: stale sign-offs and carry-forward -------------------------------------------------


def test_sign_offs_given_before_an_application_changed_are_stale() -> None:
    result = run((pinned(changed_in_revision=2),), all_signed(revision=1), revision=2)
    assert result.status == gate.PENDING
    assert codes(result) == [gate.USER_VALIDATION_PENDING, gate.ITEM_PENDING, gate.ITEM_PENDING]
    assert (result.signed, result.required) == (0, 3)
    assert result.counted == ()
    assert result.applications[0].carried_forward == 0


def test_a_stale_failure_no_longer_blocks() -> None:
    records = (signed(SEC, "fail", section="security", item_id="scan", comment="x", revision=1),)
    result = run((pinned(changed_in_revision=2),), (*records, *all_signed(revision=2)), revision=2)
    assert result.status == gate.OPEN


def test_sign_offs_of_untouched_applications_carry_forward() -> None:
    changed = pinned(changed_in_revision=3)
    untouched = pinned(checklist(OTHER), changed_in_revision=1)
    records = (*all_signed(APP, revision=2), *all_signed(OTHER, revision=1))
    result = run((changed, untouched), records, revision=3)
    assert result.status == gate.PENDING
    assert {b.application for b in result.blockers} == {APP}
    progress = {p.application: p for p in result.applications}
    assert (progress[OTHER].signed, progress[OTHER].carried_forward) == (3, 3)
    assert (progress[APP].signed, progress[APP].carried_forward) == (0, 0)
    assert progress[APP].changed_in_revision == 3


def test_carried_forward_counts_only_sign_offs_from_earlier_revisions() -> None:
    records = (
        signed(ANA, revision=1),
        signed(SEC, section="security", item_id="scan", revision=2),
        validated(DANA, revision=3),
    )
    result = run((pinned(changed_in_revision=1),), records, revision=3)
    assert result.status == gate.OPEN
    assert result.applications[0].carried_forward == 2
    assert result.to_dict()["applications"][0]["carried_forward"] == 2


def test_carried_forward_never_exceeds_what_is_needed() -> None:
    records = (signed(ANA), signed(RAJ), *all_signed()[1:])
    result = run((pinned(),), records, revision=2)
    assert result.applications[0].carried_forward == 3
    assert result.applications[0].signed == 3


def test_an_application_changed_in_the_current_revision_needs_fresh_sign_offs() -> None:
    result = run((pinned(changed_in_revision=2),), all_signed(revision=2), revision=2)
    assert result.status == gate.OPEN
    assert result.applications[0].carried_forward == 0


def test_sign_offs_from_a_later_revision_than_evaluated_do_not_count() -> None:
    result = run((pinned(),), all_signed(revision=2), revision=1)
    assert result.status == gate.PENDING
    assert result.signed == 0


# Status rules ---------------------------------------------------------------------------------


def test_blocked_beats_pending_and_blocking_blockers_come_first() -> None:
    cl = checklist(key_users=(DANA, LEE))
    records = (validated(LEE, "problem", comment="x"),)
    result = run((pinned(cl),), records)
    assert result.status == gate.BLOCKED
    assert [b.blocks for b in result.blockers] == [True, False, False, False]
    assert codes(result) == [
        gate.USER_PROBLEM_REPORTED,
        gate.USER_VALIDATION_PENDING,  # application-wide first, then by section and item
        gate.ITEM_PENDING,
        gate.ITEM_PENDING,
    ]


def test_blockers_are_ordered_by_application_section_and_item() -> None:
    result = run((pinned(checklist(OTHER)), pinned()), state="released")
    assert [(b.application, b.section, b.item) for b in result.blockers] == [
        (OTHER, None, None),
        (OTHER, "build", "artifacts"),
        (OTHER, "security", "scan"),
        (APP, None, None),
        (APP, "build", "artifacts"),
        (APP, "security", "scan"),
    ]
    assert [p.application for p in result.applications] == [OTHER, APP]


def test_pending_means_only_waiting_on_people() -> None:
    result = run((pinned(), pinned(checklist(OTHER))), all_signed()[:1])
    assert result.status == gate.PENDING
    assert len(result.blockers) == 5
    assert all(b.code in gate.WAITING_CODES for b in result.blockers)
    assert all(b.waiting_on for b in result.blockers)


def test_blocking_waiting_and_warning_codes_cover_every_code_once() -> None:
    every = {v for k, v in vars(gate).items() if re.fullmatch(r"[A-Z_]+", k) and v == k}
    kinds = (gate.BLOCKING_CODES, gate.WAITING_CODES, gate.WARNING_CODES)
    assert set().union(*kinds) == every
    # 16 + SIGNER_AWAY (deputies), FREEZE_WINDOW, FREEZE_AHEAD (freezes),
    # EMERGENCY_APPROVAL_PENDING, POST_IMPLEMENTATION_REVIEW_OVERDUE (emergencies)
    assert sum(len(k) for k in kinds) == len(every) == 21


# Progress and the JSON shape ------------------------------------------------------------------


def test_progress_counts_per_application_and_in_total() -> None:
    big = checklist(
        OTHER,
        sections=(
            Section("build", "Build", (item("a", ANA, RAJ, KIM, quorum=2), item("b", RAJ))),
            Section("ops", "Ops", (item("c", ANA, KIM, quorum="all"),)),
        ),
        key_users=(DANA, LEE),
        user_quorum=1,
    )
    records = (
        signed(ANA, app=OTHER, item_id="a"),
        signed(RAJ, app=OTHER, item_id="a"),
        signed(KIM, app=OTHER, item_id="a"),
        signed(KIM, app=OTHER, section="ops", item_id="c"),
        validated(LEE, app=OTHER),
        validated(DANA, app=OTHER),
        signed(ANA),
    )
    result = run((pinned(), pinned(big, version_label="3.0.0")), records)
    progress = {p.application: p for p in result.applications}
    assert (progress[OTHER].signed, progress[OTHER].required) == (2 + 0 + 1 + 1, 2 + 1 + 2 + 1)
    assert (progress[APP].signed, progress[APP].required) == (1, 3)
    assert (result.signed, result.required) == (5, 9)
    assert progress[OTHER].version_label == "3.0.0"
    assert progress[OTHER].checklist_version == 7


def test_to_dict_matches_the_documented_shape() -> None:
    records = (validated(DANA, "problem", comment="refunds", at=NOW - timedelta(hours=1)),)
    result = run((pinned(review_due_at=DUE),), records, overdue_policy="warn")
    doc = result.to_dict()
    json.dumps(doc)  # plain JSON all the way down
    assert set(doc) >= {
        "package",
        "revision",
        "digest",
        "status",
        "progress",
        "blockers",
        "warnings",
    }
    assert doc["package"] == PACKAGE
    assert doc["revision"] == 1
    assert doc["status"] == "blocked"
    assert doc["digest"] == result.digest
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", doc["digest"])
    assert doc["progress"] == {"signed": 0, "required": 3}
    assert doc["waiting_on"] == [ANA, RAJ, SEC]
    assert doc["blockers"][0] == {
        "code": "USER_PROBLEM_REPORTED",
        "application": APP,
        "section": None,
        "item": None,
        "waiting_on": [],
        "since": "2026-11-23T08:00:00+00:00",
        "message": f"{DANA} reported a problem with {APP}: refunds",
    }
    assert doc["blockers"][1] == {
        "code": "ITEM_PENDING",
        "application": APP,
        "section": "build",
        "item": "artifacts",
        "waiting_on": [ANA, RAJ],
        "since": REQUESTED.isoformat(),
        "message": f"item 'artifacts' of {APP}: 0 of 1 required sign-offs, waiting on {ANA}, {RAJ}",
    }
    assert [w["code"] for w in doc["warnings"]] == ["REVIEW_OVERDUE"]
    assert doc["warnings"][0]["since"] == DUE.isoformat()
    assert doc["applications"] == [
        {
            "application": APP,
            "version": "1.4.0",
            "checklist_version": 7,
            "changed_in_revision": 1,
            "signed": 0,
            "required": 3,
            "carried_forward": 0,
        }
    ]


def test_a_blocker_without_a_date_has_a_null_since() -> None:
    doc = run(applications=()).to_dict()
    assert doc["blockers"][0]["since"] is None
    assert doc["blockers"][0]["waiting_on"] == []


# The digest -----------------------------------------------------------------------------------


def open_input(**kw: Any) -> GateInput:
    records = (
        signed(ANA, record_id=1),
        signed(SEC, section="security", item_id="scan", record_id=2),
        validated(DANA, record_id=3),
    )
    return gate_input(kw.pop("applications", (pinned(),)), kw.pop("signoffs", records), **kw)


def test_the_digest_is_stable_for_equal_input() -> None:
    first, second = evaluate(open_input()), evaluate(open_input())
    assert first.status == gate.OPEN
    assert first.digest == second.digest
    assert first == second


def test_the_digest_ignores_the_order_of_sign_offs_and_applications() -> None:
    base = open_input(applications=(pinned(), pinned(checklist(OTHER))))
    shuffled = replace(base, signoffs=base.signoffs[::-1], applications=base.applications[::-1])
    assert evaluate(base).digest == evaluate(shuffled).digest
    assert evaluate(base).to_dict() == evaluate(shuffled).to_dict()


def test_the_digest_changes_with_a_counted_sign_off() -> None:
    base = open_input()
    more = replace(base, signoffs=(*base.signoffs, signed(RAJ, record_id=4)))
    assert evaluate(more).status == gate.OPEN
    assert evaluate(more).digest != evaluate(base).digest


def test_the_digest_changes_when_a_counted_sign_off_is_replaced() -> None:
    base = open_input()
    redone = replace(base, signoffs=(*base.signoffs[:2], validated(DANA, record_id=33)))
    assert evaluate(redone).status == gate.OPEN
    assert evaluate(redone).digest != evaluate(base).digest


def test_the_digest_ignores_sign_offs_that_do_not_count() -> None:
    base = open_input()
    noise = (signed(OUTSIDER, record_id=90), validated(RAJ, "problem", comment="x", record_id=91))
    noisy = replace(base, signoffs=(*base.signoffs, *noise))
    assert evaluate(noisy).digest == evaluate(base).digest


def test_the_digest_changes_with_the_revision() -> None:
    base = open_input()
    assert evaluate(replace(base, revision=2)).status == gate.OPEN
    assert evaluate(replace(base, revision=2)).digest != evaluate(base).digest


def test_the_digest_changes_with_a_version_label() -> None:
    base = open_input()
    bumped = open_input(applications=(pinned(version_label="1.4.1"),))
    assert evaluate(bumped).status == gate.OPEN
    assert evaluate(bumped).digest != evaluate(base).digest


def test_the_digest_changes_with_what_signers_are_shown_as_signed() -> None:
    base = open_input()
    elsewhere = replace(base, environment="production")
    summarised = open_input(applications=(pinned(change_summary="Refunds go through a queue"),))
    digests = {evaluate(i).digest for i in (base, elsewhere, summarised)}
    assert {evaluate(i).status for i in (elsewhere, summarised)} == {gate.OPEN}
    assert len(digests) == 3


def test_the_digest_changes_with_the_checklist_sha() -> None:
    base = open_input()
    other_sha = open_input(applications=(pinned(checklist_sha256="b" * 64),))
    assert evaluate(other_sha).status == gate.OPEN
    assert evaluate(other_sha).digest != evaluate(base).digest


def test_the_digest_changes_with_the_status() -> None:
    base = open_input()
    overdue = open_input(applications=(pinned(review_due_at=NOW),))
    assert evaluate(overdue).digest != evaluate(base).digest
    cancelled = open_input(state="cancelled")
    assert evaluate(cancelled).digest != evaluate(base).digest


# Records whose MAC does not verify (the service layer's verdict) ------------------------------


def test_a_record_whose_mac_does_not_verify_never_counts_and_is_named() -> None:
    forged = replace(signed(SEC, section="security", item_id="scan"), verified=False)
    result = run(signoffs=(signed(ANA), forged, validated(DANA)))
    assert result.status == gate.BLOCKED
    assert forged.id not in result.counted
    blocker = only(result, gate.TAMPERING_DETECTED)
    assert blocker.blocks
    assert (blocker.application, blocker.section, blocker.item) == (APP, "security", "scan")
    assert blocker.message.startswith(f"sign-off {forged.id} (item) by {SEC} on {APP}")
    assert requirement(result, "security", "scan")[0].code == gate.TAMPERING_DETECTED
    assert gate.ITEM_PENDING in codes(result)


def test_a_broken_package_seal_blocks_an_otherwise_open_gate() -> None:
    result = run(signoffs=all_signed(), records_sealed=False)
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.TAMPERING_DETECTED]
    message = only(result, gate.TAMPERING_DETECTED).message
    assert "record seal" in message
    assert "deleted, added or changed outside Gatekeeper" in message
    assert run(signoffs=all_signed()).status == gate.OPEN


def test_an_audit_chain_that_went_back_blocks_an_otherwise_open_gate() -> None:
    result = run(signoffs=all_signed(), chain_break="went back from event 9 to event 4")
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.TAMPERING_DETECTED]
    message = only(result, gate.TAMPERING_DETECTED).message
    assert message.startswith("the audit chain went back from event 9 to event 4: ")
    assert "gatekeeper audit accept-restore" in message


def test_a_tampered_governance_review_blocks_an_otherwise_open_gate() -> None:
    tampered = gate.TamperedRecord("governance_review", 41, "board@example.com", APP)
    result = run(signoffs=all_signed(), tampered=(tampered,))
    assert result.status == gate.BLOCKED
    assert codes(result) == [gate.TAMPERING_DETECTED]
    assert only(result, gate.TAMPERING_DETECTED).message.startswith(
        f"governance review 41 by board@example.com on {APP} does not carry a valid record MAC"
    )
    assert run(signoffs=all_signed()).digest != result.digest

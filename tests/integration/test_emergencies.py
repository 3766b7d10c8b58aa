"""Emergency releases on a real database: declaring (and every refusal), approving by link
(single use, the declarer cannot, an approver counts once), the gate in emergency mode, the
release, the post-implementation review and its overdue blocker on the next package."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    AuditEvent,
    EmergencyApproval,
    LearningReview,
    OutboxMessage,
    Package,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, GatekeeperError, LinkUnusable, ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import emergencies, packages
from tests.support.emergency import (
    APPROVERS,
    E2E_SIGNERS,
    KEY,
    MANAGER,
    approve,
    declare,
    gate,
    submitted,
    tokens_of,
)
from tests.support.flows import decisions_for, submit


def pass_e2e(app: Flask, clock: FixedClock) -> None:
    token = tokens_of("signoff_request", "s")[E2E_SIGNERS[0]]
    submit(app, token, decisions_for(app, token, clock), clock)


def release(app: Flask, clock: FixedClock, key: str = KEY) -> None:
    digest = gate(clock, key).digest
    with unit_of_work(db.session) as session:
        emergencies.release_package(
            session,
            key,
            digest=digest,
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )


def emergency_released(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    declare(app, clock)
    approve(app, clock, APPROVERS[0])
    approve(app, clock, APPROVERS[1])
    pass_e2e(app, clock)
    release(app, clock)


def test_declaring_emails_each_approver_and_puts_the_gate_in_emergency_mode(
    app: Flask, clock: FixedClock
) -> None:
    submitted(app, clock)
    declare(app, clock)
    assert sorted(tokens_of("emergency_approval", "emergency")) == sorted(APPROVERS)
    result = gate(clock)
    assert result.mode == "emergency"
    assert result.status == "pending"
    codes = sorted(b.code for b in result.blockers)
    assert codes == ["EMERGENCY_APPROVAL_PENDING", "ITEM_PENDING"]
    assert {b.item for b in result.blockers} == {None, "e2e-suite"}
    assert {d.item for d in result.deferred} >= {"bundle-budget", "rum-dashboards", None}
    assert result.to_dict()["emergency"]["reason"] == "checkout is down"
    actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "emergency.declared" in actions


def test_quorum_and_required_items_open_the_gate(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    declare(app, clock)
    approve(app, clock, APPROVERS[0])
    assert gate(clock).status == "pending"
    approve(app, clock, APPROVERS[1])
    assert [b.code for b in gate(clock).blockers] == ["ITEM_PENDING"]
    pass_e2e(app, clock)
    result = gate(clock)
    assert result.status == "open"
    assert result.mode == "emergency"
    # The last sign-off opened it: the release manager is told once, as for any gate.
    opened = db.session.scalars(
        sa.select(OutboxMessage.subject).where(OutboxMessage.subject.contains("gate is open"))
    ).all()
    assert len(opened) == 1


def test_the_last_approval_opening_the_gate_tells_the_manager(
    app: Flask, clock: FixedClock
) -> None:
    submitted(app, clock)
    declare(app, clock)
    pass_e2e(app, clock)
    approve(app, clock, APPROVERS[0])
    approve(app, clock, APPROVERS[2])
    assert gate(clock).status == "open"
    opened = db.session.scalars(
        sa.select(OutboxMessage.to_address).where(OutboxMessage.template == "emergency_open")
    ).all()
    assert opened == [MANAGER]


def test_an_approval_link_is_single_use_and_get_changes_nothing(
    app: Flask, clock: FixedClock
) -> None:
    submitted(app, clock)
    declare(app, clock)
    token = tokens_of("emergency_approval", "emergency")[APPROVERS[0]]
    settings = runtime(app).link_settings()
    view = emergencies.open_approval(db.session, token, links=settings, clock=clock)
    assert view.emergency.reason == "checkout is down"
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmergencyApproval)) == 0
    approve(app, clock, APPROVERS[0])
    with pytest.raises(LinkUnusable), unit_of_work(db.session) as session:
        emergencies.approve(session, token, links=settings, clock=clock)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmergencyApproval)) == 1


def test_the_declarer_gets_no_link_and_cannot_count(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    with unit_of_work(db.session) as session:
        emergencies.declare(
            session,
            KEY,
            reason="down",
            actor=APPROVERS[0],
            clock=clock,
            links=runtime(app).link_settings(),
        )
    assert sorted(tokens_of("emergency_approval", "emergency")) == sorted(APPROVERS[1:])
    blocker = next(b for b in gate(clock).blockers if b.code == "EMERGENCY_APPROVAL_PENDING")
    assert blocker.waiting_on == tuple(sorted(APPROVERS[1:]))


@pytest.mark.parametrize(
    ("reason", "error", "message"),
    [
        ("", ValidationFailed, "reason"),
        ("x" * 2001, ValidationFailed, "limited"),
    ],
)
def test_a_reason_is_required(
    app: Flask, clock: FixedClock, reason: str, error: type[Exception], message: str
) -> None:
    submitted(app, clock)
    with pytest.raises(error, match=message):
        declare(app, clock, reason=reason)


def test_refusals_leave_nothing_half_written(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    declare(app, clock)
    with pytest.raises(Conflict, match="already declared"):
        declare(app, clock)
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                "2026.12-pay", "P", "prod", None, (packages.ApplicationSpec("payments-api", "8"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
    with pytest.raises(Conflict, match="only a submitted package"):
        declare(app, clock, "2026.12-pay")
    with unit_of_work(db.session) as session:
        packages.submit_package(session, "2026.12-pay", actor=MANAGER, clock=clock)
    with pytest.raises(ValidationFailed, match="payments-api cannot be released in emergency"):
        declare(app, clock, "2026.12-pay")
    events = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action == "emergency.declared")
    ).all()
    assert events == ["emergency.declared"]


def test_an_open_gate_needs_no_emergency(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    for token in tokens_of("signoff_request", "s").values():
        submit(app, token, decisions_for(app, token, clock), clock)
    assert gate(clock).status == "open"
    with pytest.raises(Conflict, match="open already"):
        declare(app, clock)


def test_an_emergency_package_cannot_be_edited(app: Flask, clock: FixedClock) -> None:
    submitted(app, clock)
    declare(app, clock)
    changes = packages.PackageChanges(
        applications=(packages.ApplicationSpec("storefront-web", "2026.12.2"),)
    )
    with pytest.raises(Conflict, match="cannot change"), unit_of_work(db.session) as session:
        packages.edit_package(session, KEY, changes, actor=MANAGER, clock=clock)


def test_release_starts_the_review_and_a_learning_review(app: Flask, clock: FixedClock) -> None:
    emergency_released(app, clock)
    package = db.session.scalar(sa.select(Package).where(Package.key == KEY))
    assert package is not None
    emergency = package.emergency
    assert emergency is not None
    assert emergency.review_due_at == package.released_at + timedelta(hours=48)
    assert emergency.review_completed_at is None
    assert "sre-oncall@example.com" in emergency.review_waiting_on
    reviews = db.session.scalars(sa.select(LearningReview)).all()
    assert [r.trigger for r in reviews] == [f"emergency release {KEY}: checkout is down"]
    subjects = db.session.scalars(
        sa.select(OutboxMessage.subject).where(OutboxMessage.template == "signoff_request")
    ).all()
    assert any(s.startswith("Post-implementation review due") for s in subjects)
    db.session.rollback()
    released = gate(clock)
    assert (released.status, released.mode) == ("open", "emergency")


def test_the_review_completes_and_never_changes_the_released_gate(
    app: Flask, clock: FixedClock
) -> None:
    emergency_released(app, clock)
    before = gate(clock)
    clock.advance(timedelta(hours=1))
    tokens = tokens_of("signoff_request", "s")
    waiting = db.session.scalar(sa.select(Package).where(Package.key == KEY))
    assert waiting is not None
    assert waiting.emergency is not None
    people = list(waiting.emergency.review_waiting_on)
    db.session.rollback()
    for person in people:
        token = tokens[person]
        try:
            decisions = decisions_for(app, token, clock)
        except GatekeeperError:
            continue  # a signer of an item already passed by a quorum: nothing left to sign
        submit(app, token, decisions, clock)
    package = db.session.scalar(sa.select(Package).where(Package.key == KEY))
    assert package is not None
    assert package.emergency is not None
    assert package.emergency.review_completed_at == clock.now()
    assert package.emergency.review_waiting_on == []
    after = gate(clock)
    assert (after.status, after.digest, after.deferred) == (
        before.status,
        before.digest,
        before.deferred,
    )
    assert "emergency.review_completed" in db.session.scalars(sa.select(AuditEvent.action)).all()


def test_an_overdue_review_blocks_the_next_package_naming_who_is_waited_on(
    app: Flask, clock: FixedClock
) -> None:
    emergency_released(app, clock)
    submitted(app, clock, "2026.12-next", sync=False)
    due = db.session.scalar(sa.select(Package).where(Package.key == KEY))
    assert due is not None
    assert due.emergency is not None
    review_due_at = due.emergency.review_due_at
    assert review_due_at is not None
    db.session.rollback()
    clock.set(review_due_at - timedelta(microseconds=1))
    assert "POST_IMPLEMENTATION_REVIEW_OVERDUE" not in {
        b.code for b in gate(clock, "2026.12-next").blockers
    }
    clock.set(review_due_at)
    result = gate(clock, "2026.12-next")
    blocker = next(b for b in result.blockers if b.code == "POST_IMPLEMENTATION_REVIEW_OVERDUE")
    assert result.status == gate_rules.BLOCKED
    assert KEY in blocker.message
    assert "sre-oncall@example.com" in blocker.waiting_on


def test_the_cached_gate_turns_at_the_review_deadline_to_the_microsecond(
    app: Flask, clock: FixedClock
) -> None:
    emergency_released(app, clock)
    submitted(app, clock, "2026.12-next", sync=False)
    due = db.session.scalar(sa.select(Package).where(Package.key == KEY))
    assert due is not None
    assert due.emergency is not None
    deadline = due.emergency.review_due_at
    assert deadline is not None
    db.session.rollback()

    def served() -> gate_rules.GateResult:
        try:
            cached = runtime(app).gate_now(db.session, "2026.12-next")
        finally:
            db.session.rollback()
        assert cached == gate(clock, "2026.12-next"), "the cache served a stale gate"
        return cached

    served()
    clock.set(deadline - timedelta(microseconds=1))
    assert "POST_IMPLEMENTATION_REVIEW_OVERDUE" not in {b.code for b in served().blockers}
    clock.set(deadline)
    assert "POST_IMPLEMENTATION_REVIEW_OVERDUE" in {b.code for b in served().blockers}
    hits, misses = runtime(app).gate_cache.hits, runtime(app).gate_cache.misses
    assert hits >= 1, (hits, misses)
    assert misses >= 2, (hits, misses)

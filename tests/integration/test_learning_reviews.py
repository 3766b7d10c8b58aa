"""A high-impact finding opens a learning review; its action items are owned and due; overdue
ones warn every new package of the application under the gate cache, at the exact microsecond;
an approved checklist version finishes a checklist change; the export escapes what was typed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import ActionItem, LearningReview
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import learning
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, ValidationFailed
from gatekeeper.domain.finding import Report
from gatekeeper.runtime import runtime
from gatekeeper.services import findings, learning_reminders, learning_reviews, packages, users
from tests.support.governance import (
    MANAGER,
    approve,
    checklist_dir,
    gate,
    outbox,
    release,
    sign_everything,
    submit,
    sync,
    write_version,
)

SHIPPED = "2026.11-lr"
NEXT = "2026.12-lr"
TICK = timedelta(microseconds=1)
TEAM = "payments-team@example.com"
TYPED = "Refunds <script>alert(1)</script> stayed *queued*\n# not a heading"


def poll(app: Flask) -> gate_rules.GateResult:
    try:
        served = runtime(app).gate_now(db.session, NEXT)
    finally:
        db.session.rollback()
    assert served == gate(app, runtime(app).clock, NEXT), "the cache served a stale gate"
    return served


def codes(result: gate_rules.GateResult) -> list[str]:
    return [w.code for w in result.warnings if w.code != gate_rules.OPEN_FINDING]


def report(app: Flask, clock: FixedClock, level: str) -> str:
    with unit_of_work(db.session) as session:
        filed = findings.record_report(
            session,
            package=packages.get_package(session, SHIPPED),
            application="payments-api",
            reporter="refunds-desk@example.com",
            report=Report(TYPED, "14 customers waited a day", "A large refund", level),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
        return filed.ref


@pytest.fixture
def shipped(app: Flask, clock: FixedClock, tmp_path: Path) -> Path:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, SHIPPED, {"payments-api": "7.3.2"})
    sign_everything(clock, SHIPPED)
    release(app, clock, SHIPPED)
    submit(clock, NEXT, {"payments-api": "7.4.0"})
    return directory


def reviews() -> list[LearningReview]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(LearningReview).order_by(LearningReview.id)))


def test_only_a_high_impact_report_opens_a_review(
    app: Flask, clock: FixedClock, shipped: Path
) -> None:
    with pytest.raises(ValidationFailed, match="impact level"):
        report(app, clock, "urgent")
    report(app, clock, "medium")
    assert reviews() == []
    ref = report(app, clock, "high")
    (review,) = reviews()
    assert review.due_at == clock.now() + timedelta(hours=48)
    assert [f.ref for f in review.findings] == [ref]
    assert review.state == learning.OPEN


def test_overdue_review_and_items_warn_at_the_instant_and_a_version_finishes_a_change(
    app: Flask, clock: FixedClock, shipped: Path, runner: FlaskCliRunner
) -> None:
    ref = report(app, clock, "high")
    reported = clock.now()
    with unit_of_work(db.session) as session:
        review = session.scalars(sa.select(LearningReview)).one()
        finding = findings.get_finding(session, 1)
        change = learning_reviews.add_action_item(
            session,
            review,
            title="Add a large-refund scenario",
            owner=TEAM,
            due_at=reported + timedelta(days=7),
            kind=learning.CHECKLIST_CHANGE,
            actor=MANAGER,
            now=reported,
            findings=[finding],
        )
        process = learning_reviews.add_action_item(
            session,
            review,
            title="Try refunds <b>above</b> the limit in staging",
            owner=TEAM,
            due_at=reported + timedelta(days=3),
            kind="process",
            actor=MANAGER,
            now=reported,
        )
        review_due, change_id, process_id = review.due_at, change.id, process.id
    assert codes(poll(app)) == []
    clock.set(review_due - TICK)
    assert codes(poll(app)) == []
    clock.set(review_due)
    (warning,) = [w for w in poll(app).warnings if w.code == gate_rules.LEARNING_REVIEW_OVERDUE]
    assert warning.waiting_on == (MANAGER,)
    assert poll(app).status == gate_rules.PENDING, "a warning never blocks"
    with unit_of_work(db.session) as session:
        learning_reviews.complete_review(
            session,
            learning_reviews.get_review(session, 1),
            statement=TYPED,
            factors="Only small refunds were tried; nothing in the checklist asked for more.",
            actor=MANAGER,
            now=clock.now(),
        )
    assert codes(poll(app)) == [], "the cache moved with the write"
    clock.set(reported + timedelta(days=3) - TICK)
    assert codes(poll(app)) == []
    clock.set(reported + timedelta(days=3))
    assert codes(poll(app)) == [gate_rules.ACTION_ITEM_OVERDUE]
    with unit_of_work(db.session) as session:
        item = session.get(ActionItem, process_id)
        assert item is not None
        with pytest.raises(ValidationFailed, match="rationale"):
            learning_reviews.close_action_item(
                session, item, action=learning.DROP, actor=MANAGER, now=clock.now()
            )
    with unit_of_work(db.session) as session:
        item = session.get(ActionItem, process_id)
        assert item is not None
        learning_reviews.close_action_item(
            session,
            item,
            action=learning.DROP,
            actor=MANAGER,
            now=clock.now(),
            rationale="Staging cannot hold real limits; covered by the checklist change",
        )
    assert codes(poll(app)) == []
    write_version(shipped, "payments-api", 8, addresses=[ref])
    sync(app, clock, shipped)
    approve(clock, "payments-api", 8)
    db.session.rollback()
    done = db.session.get(ActionItem, change_id)
    assert done is not None
    assert (done.state, done.closed_by) == (
        learning.DONE,
        "release-board@example.com (checklist version 8)",
    )
    exported = runner.invoke(cli, ["reviews", "export", "LR-1"])
    assert exported.exit_code == 0, exported.output
    text = exported.output
    assert "<script>" not in text
    assert "<b>" not in text
    assert "\\# not a heading" in text
    assert "Add a large\\-refund scenario" in text
    assert "Package submitted" in text or "submitted" in text.lower()
    assert runner.invoke(cli, ["reviews", "export", "LR-99"]).exit_code == 1
    with unit_of_work(db.session) as session:
        assert packages.get_package(session, NEXT).key == NEXT


def staff(clock: FixedClock, email: str, role: str | None) -> None:
    with unit_of_work(db.session) as session:
        user = users.add_user(session, email=email, name="Staff", role="admin", clock=clock)
        user.role = role  # single sign-on may map no role at all


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (users.RELEASE_MANAGER, True),
        (users.GOVERNANCE_REVIEWER, True),
        (users.ADMIN, True),
        (None, False),
    ],
)
def test_a_review_opened_by_hand_needs_a_writer_role(
    app: Flask,
    clock: FixedClock,
    shipped: Path,
    runner: FlaskCliRunner,
    role: str | None,
    allowed: bool,
) -> None:
    staff(clock, "opener@example.com", role)
    args = [
        "reviews",
        "open",
        SHIPPED,
        "--application",
        "payments-api",
        "--reason",
        "Refund queue stalled",
        "--as",
        "opener@example.com",
    ]
    result = runner.invoke(cli, args)
    if not allowed:
        assert result.exit_code == 1
        assert "release manager or a governance reviewer" in result.output
        assert reviews() == []
        return
    assert result.exit_code == 0, result.output
    assert result.output.startswith("LR-1 opened, due ")
    (review,) = reviews()
    assert (review.trigger, review.opened_by) == (
        "opened by hand: Refund queue stalled",
        "opener@example.com",
    )
    assert review.due_at == clock.now() + timedelta(hours=48)


def test_opening_by_hand_refuses_strangers_and_foreign_applications(
    app: Flask, clock: FixedClock, shipped: Path, runner: FlaskCliRunner
) -> None:
    base = ["reviews", "open", SHIPPED, "--reason", "why"]
    stranger = runner.invoke(cli, [*base, "--application", "payments-api", "--as", "x@example.com"])
    assert stranger.exit_code == 1
    staff(clock, "opener@example.com", users.RELEASE_MANAGER)
    foreign = runner.invoke(
        cli, [*base, "--application", "storefront-web", "--as", "opener@example.com"]
    )
    assert foreign.exit_code == 1
    assert "has no application" in foreign.output
    unknown = runner.invoke(
        cli,
        [
            "reviews",
            "open",
            "nope",
            "--application",
            "payments-api",
            "--reason",
            "why",
            "--as",
            "opener@example.com",
        ],
    )
    assert unknown.exit_code == 1
    assert reviews() == []


def test_a_draft_is_saved_until_completed_then_the_review_is_a_record(
    app: Flask, clock: FixedClock, shipped: Path
) -> None:
    report(app, clock, "high")
    with unit_of_work(db.session) as session:
        review = learning_reviews.get_review(session, 1)
        learning_reviews.edit_review(
            session,
            review,
            statement="Refunds stalled",
            factors="",
            actor=MANAGER,
            now=clock.now(),
        )
        learning_reviews.add_timeline_entry(
            session,
            review,
            occurred_at=clock.now(),
            text="Desk noticed",
            actor=MANAGER,
            now=clock.now(),
        )
        learning_reviews.complete_review(
            session,
            review,
            statement="Refunds stalled",
            factors="Small refunds only",
            actor=MANAGER,
            now=clock.now(),
        )
    with unit_of_work(db.session) as session:
        review = learning_reviews.get_review(session, 1)
        with pytest.raises(Conflict):
            learning_reviews.edit_review(
                session, review, statement="x", factors="y", actor=MANAGER, now=clock.now()
            )
        with pytest.raises(Conflict):
            learning_reviews.add_timeline_entry(
                session,
                review,
                occurred_at=clock.now(),
                text="late",
                actor=MANAGER,
                now=clock.now(),
            )
    (review,) = reviews()
    assert (review.state, review.statement) == (learning.COMPLETED, "Refunds stalled")


def remind(app: Flask, clock: FixedClock) -> dict[str, int]:
    with unit_of_work(db.session) as session:
        return learning_reminders.send_learning_reminders(
            session, settings=runtime(app).governance_settings(), clock=clock
        )


def test_reminders_go_once_before_the_review_and_each_action_item_fall_due(
    app: Flask, clock: FixedClock, shipped: Path
) -> None:
    report(app, clock, "high")
    opened = clock.now()
    with unit_of_work(db.session) as session:
        review = learning_reviews.get_review(session, 1)
        learning_reviews.add_action_item(
            session,
            review,
            title="Alert on <queued> refunds",
            owner=TEAM,
            due_at=opened + timedelta(days=5),
            kind="tooling",
            actor=MANAGER,
            now=opened,
        )
    nothing = {"learning_reviews_due": 0, "action_items_due": 0}
    review_reminder = opened + timedelta(hours=48) - learning.REVIEW_REMINDER_LEAD
    clock.set(review_reminder - TICK)
    assert remind(app, clock) == nothing
    clock.set(review_reminder)
    assert remind(app, clock) == {"learning_reviews_due": 1, "action_items_due": 0}
    assert remind(app, clock) == nothing, "each reminder is sent once"
    sent = outbox("learning_review_due")
    assert sorted(m.to_address for m in sent) == [
        "release-board@example.com",
        MANAGER,
    ]
    assert "/learning-reviews/1" in sent[0].body_text
    item_reminder = opened + timedelta(days=5) - learning.ITEM_REMINDER_LEAD
    clock.set(item_reminder - TICK)
    assert remind(app, clock) == nothing
    clock.set(item_reminder)
    assert remind(app, clock) == {"learning_reviews_due": 0, "action_items_due": 1}
    clock.set(item_reminder + timedelta(days=9))
    assert remind(app, clock) == nothing
    (mail,) = outbox("action_item_due")
    assert mail.to_address == TEAM
    assert "Alert on &lt;queued&gt; refunds" in mail.body_html
    assert "Alert on <queued> refunds" in mail.body_text


def test_a_closed_review_or_item_is_not_reminded(
    app: Flask, clock: FixedClock, shipped: Path
) -> None:
    report(app, clock, "high")
    with unit_of_work(db.session) as session:
        review = learning_reviews.get_review(session, 1)
        item = learning_reviews.add_action_item(
            session,
            review,
            title="Alert",
            owner=TEAM,
            due_at=clock.now(),
            kind="tooling",
            actor=MANAGER,
            now=clock.now(),
        )
        learning_reviews.close_action_item(
            session, item, action=learning.FINISH, actor=MANAGER, now=clock.now()
        )
        learning_reviews.complete_review(
            session, review, statement="s", factors="f", actor=MANAGER, now=clock.now()
        )
    clock.advance(timedelta(days=3))
    assert remind(app, clock) == {"learning_reviews_due": 0, "action_items_due": 0}

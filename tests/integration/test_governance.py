"""Checklist governance on a real database: review links on sync, approval by a non-author only,
pending versions never pinned, the overdue boundary under both policies, reaffirmation,
scheduled reminders once per due date, and the governance dashboard with its CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.app import create_app
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, ChecklistVersion, ReviewLink, ReviewReminder
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, LinkUnusable, PermissionDenied, ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, governance, packages, reviews
from tests.conftest import START, clean_environ, dispose
from tests.support.flows import race
from tests.support.governance import (
    BOARD,
    UX_LEAD,
    approve,
    checklist_dir,
    gate,
    outbox,
    sign_everything,
    submit,
    sync,
    tokens,
    write_version,
)

KEY = "2026.11-gov"
DUE = START + timedelta(days=90)  # payments-api is reviewed every 90 days
TICK = timedelta(microseconds=1)


def count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def review_links(state: str | None = None) -> list[ReviewLink]:
    query = sa.select(ReviewLink).order_by(ReviewLink.id)
    if state:
        query = query.where(ReviewLink.state == state)
    return list(db.session.scalars(query))


def reminders(app: Flask, clock: FixedClock) -> dict[str, int]:
    with unit_of_work(db.session) as session:
        return reviews.send_review_reminders(
            session, settings=runtime(app).governance_settings(), clock=clock
        )


def open_review(app: Flask, clock: FixedClock, token: str) -> reviews.ReviewView:
    return reviews.open_review(
        db.session, token, settings=runtime(app).governance_settings(), clock=clock
    )


def submit_review(
    app: Flask, clock: FixedClock, token: str, decision: reviews.ReviewDecision
) -> str:
    with unit_of_work(db.session) as session:
        return reviews.submit_review(
            session, token, decision, settings=runtime(app).governance_settings(), clock=clock
        ).outcome


# --- new versions ----------------------------------------------------------------------------


def test_sync_emails_every_named_reviewer_a_review_link(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    created = sync(app, clock, checklist_dir(tmp_path), author="dev@example.com")
    # The freeze calendar is synced too; its reviewers approve it with `gatekeeper freezes review`.
    assert created == [
        "identity-platform v4",
        "payments-api v7",
        "storefront-web v12",
        "freeze calendar v1",
    ]
    sent = sorted((m.to_address, m.subject) for m in outbox("review_request"))
    assert sent == [
        (BOARD, "Review needed: Identity platform (SSO and tokens) checklist v4"),
        (BOARD, "Review needed: Payments API checklist v7"),
        (BOARD, "Review needed: Storefront web shop checklist v12"),
        (
            "security-architect@example.com",
            "Review needed: Identity platform (SSO and tokens) checklist v4",
        ),
        (UX_LEAD, "Review needed: Storefront web shop checklist v12"),
    ]
    assert [link.reason for link in review_links("active")] == ["new_version"] * 5
    assert "dev@example.com" in outbox("review_request")[0].body_text
    issued = db.session.scalars(
        sa.select(AuditEvent.subject).where(AuditEvent.action == "review_link.issued")
    ).all()
    assert len(issued) == 5
    assert sync(app, clock, checklist_dir(tmp_path, "again")) == []
    assert len(outbox("review_request")) == 5, "an unchanged sync emails nobody"


def test_the_review_email_summarises_what_changed(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    write_version(directory, "payments-api", 8, addresses=["F-1", "JIRA-7"])
    clock.advance(timedelta(hours=1))
    sync(app, clock, directory, author="dev@example.com")
    newest = outbox("review_request")[-1]
    assert newest.subject == "Review needed: Payments API checklist v8"
    assert "What changed since version 7:" in newest.body_text
    assert "scenarios: 1 added, 0 removed" in newest.body_text
    assert "also changed: addresses findings" in newest.body_text
    assert "keep using version 7" in newest.body_text


def test_only_a_reviewer_who_did_not_author_the_version_approves_it(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    sync(app, clock, checklist_dir(tmp_path), author=UX_LEAD)
    with pytest.raises(PermissionDenied, match="another reviewer must approve it"):
        approve(clock, "storefront-web", 12, reviewer=UX_LEAD)
    with pytest.raises(PermissionDenied, match="not a governance reviewer"):
        approve(clock, "storefront-web", 12, reviewer="mallory@example.com")
    # Through the emailed link the same rule holds, and the page says so before anything.
    token = tokens("review")[UX_LEAD]
    view = open_review(app, clock, token)
    assert view.is_author
    decision = reviews.ReviewDecision("approve", consulted="Support and merchandising leads")
    assert "another reviewer must approve it" in reviews.decision_errors(view, decision)["action"]
    with pytest.raises(ValidationFailed, match="another reviewer must approve it"):
        submit_review(app, clock, token, decision)
    assert review_links("active"), "a refused decision leaves the link usable"
    # The author may still send it back; another reviewer approves.
    assert approve(clock, "storefront-web", 12, reviewer=BOARD) == "approved"
    stored = checklists.get_version(db.session, "storefront-web", 12)
    assert stored.state == "approved"


def test_approving_needs_the_key_users_consulted_and_sending_back_needs_notes(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    sync(app, clock, checklist_dir(tmp_path), author="dev@example.com")
    token = tokens("review", about="(payments-api)")[BOARD]
    for decision, field in (
        (reviews.ReviewDecision("approve", consulted="  "), "consulted"),
        (reviews.ReviewDecision("request_changes"), "notes"),
        (reviews.ReviewDecision("reject"), "action"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            submit_review(app, clock, token, decision)
        assert field in refused.value.details
    outcome = submit_review(
        app, clock, token, reviews.ReviewDecision("request_changes", notes="Add a refund scenario")
    )
    assert outcome == "changes_requested"
    told = outbox("checklist_reviewed")
    assert sorted(m.to_address for m in told) == [
        "dev@example.com",
        "payments-team@example.com",
        BOARD,
    ]
    assert "Add a refund scenario" in told[0].body_text


def test_two_reviewers_deciding_at_once_leave_exactly_one_decision(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    sync(app, clock, checklist_dir(tmp_path), author="dev@example.com")
    found = tokens("review", about="(storefront-web)")
    db.session.rollback()
    decision = reviews.ReviewDecision("approve", consulted="the key users")

    def decide(reviewer: str) -> None:
        submit_review(app, clock, found[reviewer], decision)

    results = race(app, [lambda: decide(BOARD), lambda: decide(UX_LEAD)])
    failures = [r for r in results if r is not None]
    assert len(failures) == 1, results
    # SQLite serialises the two: the second finds the version decided. PostgreSQL lets both
    # start: the conditional UPDATE of the version makes the second a conflict.
    assert isinstance(failures[0], Conflict | LinkUnusable), failures
    db.session.rollback()
    stored = checklists.get_version(db.session, "storefront-web", 12)
    assert (stored.state, len(stored.reviews)) == ("approved", 1)


def test_two_first_approvals_at_once_make_one_approval_of_unknown_authorship(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    (directory / "payments-api.yaml").unlink()  # one reviewer: it could never be approved
    sync(app, clock, directory, author=None)

    def first_approval(reviewer: str) -> None:
        approve(clock, "storefront-web", 12, reviewer=reviewer)

    results = race(app, [lambda: first_approval(BOARD), lambda: first_approval(UX_LEAD)])
    assert results == [None, None]
    db.session.rollback()
    stored = checklists.get_version(db.session, "storefront-web", 12)
    assert stored.state == "approved", "each approval saw the other: the second completes it"
    assert sorted(r.outcome for r in stored.reviews) == ["approved", "partially_approved"]


def test_pending_versions_are_never_pinned(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    write_version(directory, "payments-api", 8)
    sync(app, clock, directory, author="dev@example.com")
    submit(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    package = packages.get_package(db.session, KEY)
    pinned = {pa.application.slug: pa.checklist_version for pa in package.applications}
    assert pinned["payments-api"] is not None
    assert pinned["payments-api"].version == 7
    assert pinned["storefront-web"] is None, "only a pending version: nothing to pin"
    result = gate(app, clock, KEY)
    blocker = next(b for b in result.blockers if b.application == "storefront-web")
    assert blocker.code == gate_rules.NO_APPROVED_CHECKLIST
    assert not [b for b in result.blockers if b.code == gate_rules.CHECKLIST_NOT_APPROVED]
    # Approving v8 now changes nothing for the package already in review.
    approve(clock, "payments-api", 8)
    db.session.expire_all()
    package = packages.get_package(db.session, KEY)
    versions = {pa.application.slug: pa.checklist_version for pa in package.applications}
    assert versions["payments-api"] is not None
    assert versions["payments-api"].version == 7


# --- scheduled reviews -----------------------------------------------------------------------


@pytest.fixture
def released_ready(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    """payments-api v7 approved at START, a package pinning it with every sign-off in."""
    sync(app, clock, checklist_dir(tmp_path))
    approve(clock, "payments-api", 7)
    submit(clock, KEY, {"payments-api": "7.4.0"})
    sign_everything(clock, KEY)


@pytest.mark.parametrize("policy", [gate_rules.BLOCK_OVERDUE, gate_rules.WARN_OVERDUE])
def test_an_overdue_review_blocks_or_warns_from_the_exact_due_instant(
    app: Flask, clock: FixedClock, released_ready: None, policy: str
) -> None:
    clock.set(DUE - TICK)
    before = gate(app, clock, KEY, policy)
    assert (before.status, before.blockers, before.warnings) == (gate_rules.OPEN, (), ())
    clock.set(DUE)
    at = gate(app, clock, KEY, policy)
    if policy == gate_rules.BLOCK_OVERDUE:
        assert at.status == gate_rules.BLOCKED
        (overdue,) = at.blockers
        assert at.warnings == ()
    else:
        assert at.status == gate_rules.OPEN
        (overdue,) = at.warnings
        assert at.blockers == ()
    assert overdue.code == gate_rules.REVIEW_OVERDUE
    assert overdue.waiting_on == (BOARD,)
    assert overdue.since == DUE
    assert "was due 2027-02-21" in overdue.message


def test_reaffirming_restarts_the_clock(
    app: Flask, clock: FixedClock, released_ready: None
) -> None:
    clock.set(DUE + timedelta(days=3))
    assert gate(app, clock, KEY).status == gate_rules.BLOCKED
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 1}
    token = tokens("review", "review_request")[BOARD]
    view = open_review(app, clock, token)
    assert view.reaffirm
    assert view.link.reason == "review_overdue"
    assert view.diff is None
    outcome = submit_review(
        app, clock, token, reviews.ReviewDecision("approve", consulted="Dana, by phone")
    )
    assert outcome == "reaffirmed"
    stored = checklists.get_version(db.session, "payments-api", 7)
    assert stored.state == "approved"
    assert [r.outcome for r in stored.reviews] == ["approved", "reaffirmed"]
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    restarted = clock.now() + timedelta(days=90)
    clock.set(restarted - TICK)
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    clock.set(restarted)
    assert [b.code for b in gate(app, clock, KEY).blockers] == [gate_rules.REVIEW_OVERDUE]
    events = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("checklist.%"))
    ).all()
    assert events[-1] == "checklist.reaffirmed"


def test_the_version_in_use_cannot_be_sent_back(
    app: Flask, clock: FixedClock, released_ready: None
) -> None:
    clock.set(DUE)
    reminders(app, clock)
    token = tokens("review", "review_request")[BOARD]
    with pytest.raises(ValidationFailed, match="cannot be sent back"):
        submit_review(app, clock, token, reviews.ReviewDecision("request_changes", notes="x"))


def test_reminders_go_out_ahead_and_when_overdue_once_each_per_due_date(
    app: Flask, clock: FixedClock, released_ready: None
) -> None:
    lead = runtime(app).governance_settings().review_lead
    assert lead == timedelta(days=14)
    clock.set(DUE - lead - TICK)
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 0}
    clock.set(DUE - lead)
    assert reminders(app, clock) == {"reviews_due_soon": 1, "reviews_overdue": 0}
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 0}
    ahead = outbox("review_request")[-1]
    assert (ahead.to_address, ahead.subject) == (
        BOARD,
        "Due 2027-02-21: governance review of the Payments API checklist",
    )
    clock.set(DUE - TICK)
    assert reminders(app, clock)["reviews_overdue"] == 0
    clock.set(DUE)
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 1}
    clock.advance(timedelta(days=5))
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 0}
    overdue = outbox("review_request")[-1]
    assert overdue.subject.startswith("Overdue: governance review of the Payments API checklist")
    assert "REVIEW_OVERDUE" in overdue.body_text
    # The overdue link replaced the earlier one: links work once, and only the newest.
    states = [(link.reason, link.state) for link in review_links() if link.reason != "new_version"]
    assert states == [("review_due", "superseded"), ("review_overdue", "active")]
    assert count(ReviewReminder) == 2
    # A reaffirmation makes a new due date, with its own two reminders.
    approve(clock, "payments-api", 7)
    clock.set(clock.now() + timedelta(days=90) - lead)
    assert reminders(app, clock) == {"reviews_due_soon": 1, "reviews_overdue": 0}


def test_a_late_worker_skips_straight_to_the_overdue_reminder(
    app: Flask, clock: FixedClock, released_ready: None
) -> None:
    clock.set(DUE + timedelta(days=1))
    assert reminders(app, clock) == {"reviews_due_soon": 0, "reviews_overdue": 1}


def test_workers_racing_send_each_reminder_once(
    app: Flask, clock: FixedClock, released_ready: None
) -> None:
    clock.set(DUE)

    def work() -> None:
        reminders(app, clock)

    assert race(app, [work] * 4) == [None] * 4
    assert count(ReviewReminder) == 1
    assert len([m for m in outbox("review_request") if m.subject.startswith("Overdue")]) == 1


def test_the_lead_time_is_configurable(
    app: Flask, clock: FixedClock, released_ready: None, database_url: str, tmp_path: Path
) -> None:
    environ = clean_environ(GATEKEEPER_DATABASE_URL=database_url, GATEKEEPER_REVIEW_LEAD_DAYS="30")
    other = create_app(clock=clock, environ=environ, instance_path=str(tmp_path / "other"))
    settings = runtime(other).governance_settings()
    assert settings.review_lead == timedelta(days=30)
    clock.set(DUE - timedelta(days=30))
    with unit_of_work(db.session) as session:
        sent = reviews.send_review_reminders(session, settings=settings, clock=clock)
    assert sent["reviews_due_soon"] == 1
    dispose(other)


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_every_checklist_and_exports_csv(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7, consulted='=HYPERLINK("http://evil") Dana')
    approve(clock, "identity-platform", 4, reviewer="security-architect@example.com")
    write_version(directory, "payments-api", 8)
    sync(app, clock, directory, author="dev@example.com")
    submit(clock, KEY, {"payments-api": "7.4.0"})
    sign_everything(clock, KEY)
    clock.set(START + timedelta(days=20))
    rows = {
        row.application: row
        for row in governance.dashboard(db.session, now=clock.now(), lead=timedelta(days=14))
    }
    payments, identity, storefront = (
        rows["payments-api"],
        rows["identity-platform"],
        rows["storefront-web"],
    )
    assert (payments.approved_version, payments.pending_versions) == (7, (8,))
    assert payments.last_review_at == START
    assert (payments.last_review_outcome, payments.last_reviewer) == ("approved", BOARD)
    assert payments.next_due_at == DUE
    assert payments.standing == "ok"
    assert (payments.key_users, payments.last_consulted_at) == (2, START)
    assert payments.last_validated_at == START
    assert identity.next_due_at == START + timedelta(days=30)
    assert identity.standing == "due_soon"
    assert identity.last_validated_at is None
    assert (storefront.approved_version, storefront.pending_versions) == (None, (12,))
    assert storefront.standing == "not_approved"
    assert not storefront.overdue
    clock.set(START + timedelta(days=30))
    late = governance.dashboard(db.session, now=clock.now(), lead=timedelta(days=14))
    assert [r.application for r in late if r.overdue] == ["identity-platform"]
    exported = list(csv.DictReader(io.StringIO(governance.dashboard_csv(late))))
    assert [r["application"] for r in exported] == [
        "identity-platform",
        "payments-api",
        "storefront-web",
    ]
    assert exported[0]["review_standing"] == "overdue"
    assert exported[1]["pending_versions"] == "8"
    assert exported[1]["approved_version"] == "7"
    assert exported[1]["next_review_due_at"] == DUE.isoformat()
    assert exported[1]["key_users"] == "2"
    assert exported[1]["key_users_consulted"].startswith("'=HYPERLINK"), "no formula injection"
    assert list(exported[0]) == list(governance.CSV_COLUMNS)


def test_dashboard_cost_does_not_grow_with_checklists(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    from tests.functional.api_helpers import recorded_statements

    def statements() -> list[str]:
        db.session.rollback()
        with recorded_statements() as seen:
            governance.dashboard(db.session, now=clock.now(), lead=timedelta(days=14))
        return [s for s in seen if s.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]

    empty = statements()
    sync(app, clock, checklist_dir(tmp_path))
    for application, version in (("payments-api", 7), ("storefront-web", 12)):
        approve(clock, application, version)
    assert len(statements()) == len(empty) == 5
    assert count(ChecklistVersion) == 3

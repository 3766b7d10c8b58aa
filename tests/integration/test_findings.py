"""The learning loop on a real database: a release emails report links, a report becomes a
finding, triage accepts or declines it, an approved version that references it addresses it,
and untriaged findings warn in the gates of later packages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, Finding, ReportLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, LinkUnusable, ValidationFailed
from gatekeeper.domain.finding import Report
from gatekeeper.runtime import runtime
from gatekeeper.services import evidence, findings, reviews
from tests.support.flows import race
from tests.support.governance import (
    BOARD,
    MANAGER,
    approve,
    checklist_dir,
    gate,
    outbox,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
    write_version,
)

RELEASED = "2026.10-r1"
NEXT = "2026.11-r1"
REPORTER = "refunds-desk@example.com"
KEY_USERS = ("refunds-desk@example.com", "settlement-lead@example.com")
CONSUMERS = ("ledger-team@example.com", "partner-ops@example.com")
REPORT = Report(
    "Refunds over 1,000 EUR stayed queued for hours",
    "14 customers waited a day for their money",
    "A scenario refunding a large amount",
)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return checklist_dir(tmp_path)


@pytest.fixture
def released(app: Flask, clock: FixedClock, directory: Path) -> None:
    """payments-api v7 approved, and a package with it released."""
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, RELEASED, {"payments-api": "7.3.2"})
    sign_everything(clock, RELEASED)
    release(app, clock, RELEASED)


def report(app: Flask, clock: FixedClock, token: str, application: str = "payments-api") -> str:
    with unit_of_work(db.session) as session:
        filed = findings.submit_report(
            session,
            token,
            application=application,
            report=REPORT,
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
        return filed.ref


def triage(clock: FixedClock, ref: str, classification: str, rationale: str = "") -> str:
    with unit_of_work(db.session) as session:
        found = findings.triage(
            session,
            int(ref.removeprefix("F-")),
            classification=classification,
            actor=BOARD,
            rationale=rationale,
            clock=clock,
        )
        return found.state


def finding(ref: str) -> Finding:
    db.session.rollback()
    return findings.get_finding(db.session, int(ref.removeprefix("F-")))


def test_the_release_email_gives_key_users_and_consumers_a_report_link(
    app: Flask, clock: FixedClock, released: None
) -> None:
    mails = {m.to_address: m for m in outbox("package_released")}
    assert set(mails) == {MANAGER, *KEY_USERS, *CONSUMERS}
    links = tokens("report", "package_released")
    assert set(links) == {*KEY_USERS, *CONSUMERS}, "the release manager gets no report link"
    assert "Report a problem found after release" in mails[REPORTER].body_html
    assert "we never ask who is at fault" in mails[REPORTER].body_text
    stored = db.session.scalars(sa.select(ReportLink.recipient).order_by(ReportLink.recipient))
    assert list(stored) == sorted({*KEY_USERS, *CONSUMERS})
    assert len(set(links.values())) == 4


def test_report_becomes_a_finding_that_an_approved_version_addresses(
    app: Flask, clock: FixedClock, released: None, directory: Path
) -> None:
    token = tokens("report")[REPORTER]
    view = findings.open_report(
        db.session, token, settings=runtime(app).governance_settings(), clock=clock
    )
    assert view.suggested == "payments-api"
    assert [a.slug for a in view.applications] == ["payments-api"]
    clock.advance(timedelta(hours=2))
    ref = report(app, clock, token)
    filed = finding(ref)
    assert (filed.state, filed.application.slug, filed.reported_by) == (
        "open",
        "payments-api",
        REPORTER,
    )
    assert filed.checklist_version is not None
    assert filed.checklist_version.version == 7
    assert filed.package is not None
    assert filed.package.key == RELEASED
    (told,) = outbox("finding_reported")
    assert told.to_address == BOARD
    assert f"{runtime(app).settings.base_url}/review/findings/" in told.body_text
    assert REPORT.could_have_caught in told.body_text
    # Accepted, then version 8 lists it under `addresses:` and is approved: addressed.
    assert triage(clock, ref, "uncovered", "yes: add a large-refund scenario") == "accepted"
    write_version(directory, "payments-api", 8, addresses=[ref, "JIRA-88"])
    sync(app, clock, directory, author="dev@example.com")
    assert finding(ref).state == "accepted", "a pending version addresses nothing yet"
    approve(clock, "payments-api", 8)
    addressed = finding(ref)
    assert addressed.state == "addressed"
    assert addressed.addressed_by_version is not None
    assert addressed.addressed_by_version.version == 8
    assert (addressed.addressed_by, addressed.addressed_at) == (BOARD, clock.now())
    (thanks,) = outbox("finding_addressed")
    assert thanks.to_address == REPORTER
    assert "version 8 of the payments-api checklist" in thanks.body_text
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("finding.%"))
    ).all()
    assert actions == ["finding.reported", "finding.accepted", "finding.addressed"]
    approved = db.session.scalars(
        sa.select(AuditEvent.details).where(AuditEvent.action == "checklist.approved")
    ).all()
    assert f'"addressed_findings":["{ref}"]' in approved[-1]


def test_a_finding_chosen_in_the_review_is_addressed_by_the_approval(
    app: Flask, clock: FixedClock, released: None, directory: Path
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    write_version(directory, "payments-api", 8)  # no `addresses:` in the YAML
    sync(app, clock, directory, author="dev@example.com")
    token = tokens("review", about="(payments-api)")[BOARD]
    settings = runtime(app).governance_settings()
    view = reviews.open_review(db.session, token, settings=settings, clock=clock)
    assert [f.ref for f in view.findings] == [ref]
    assert view.referenced == frozenset()
    with unit_of_work(db.session) as session:
        reviews.submit_review(
            session,
            token,
            reviews.ReviewDecision("approve", consulted="Malik", addresses=(ref, "F-999")),
            settings=settings,
            clock=clock,
        )
    assert finding(ref).state == "addressed"
    told = outbox("checklist_reviewed")[-1]
    assert f"Findings addressed by this version: {ref}" in told.body_text


def test_the_review_page_preselects_findings_the_yaml_addresses(
    app: Flask, clock: FixedClock, released: None, directory: Path
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    write_version(directory, "payments-api", 8, addresses=[ref, "F-404", "JIRA-1"])
    sync(app, clock, directory, author="dev@example.com")
    token = tokens("review", about="(payments-api)")[BOARD]
    view = reviews.open_review(
        db.session, token, settings=runtime(app).governance_settings(), clock=clock
    )
    assert view.referenced == frozenset({ref})
    assert view.other_refs == ("JIRA-1", "F-404")
    assert view.diff is not None
    assert view.diff.scenarios_added


def test_sending_a_version_back_addresses_nothing(
    app: Flask, clock: FixedClock, released: None, directory: Path
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    write_version(directory, "payments-api", 8, addresses=[ref])
    sync(app, clock, directory, author="dev@example.com")
    token = tokens("review", about="(payments-api)")[BOARD]
    with unit_of_work(db.session) as session:
        reviews.submit_review(
            session,
            token,
            reviews.ReviewDecision("request_changes", notes="Say which amount", addresses=(ref,)),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
    assert finding(ref).state == "open"


def test_declining_needs_a_rationale_and_is_final(
    app: Flask, clock: FixedClock, released: None, directory: Path
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    with pytest.raises(ValidationFailed, match="why the finding is not a checklist matter"):
        triage(clock, ref, "not_a_checklist_matter", "  ")
    assert finding(ref).state == "open"
    assert (
        triage(clock, ref, "not_a_checklist_matter", "A bank outage, not our release") == "declined"
    )
    declined = finding(ref)
    assert (declined.rationale, declined.triaged_by) == ("A bank outage, not our release", BOARD)
    with pytest.raises(Conflict, match="a finding that is declined cannot be accepted"):
        triage(clock, ref, "uncovered")
    with pytest.raises(ValidationFailed, match="classify the finding"):
        triage(clock, ref, "address")
    # A version that still lists it leaves a declined finding declined.
    write_version(directory, "payments-api", 8, addresses=[ref])
    sync(app, clock, directory, author="dev@example.com")
    approve(clock, "payments-api", 8)
    assert finding(ref).state == "declined"


def test_two_triagers_at_once_leave_one_decision(
    app: Flask, clock: FixedClock, released: None
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    db.session.rollback()
    results = race(
        app,
        [
            lambda: triage(clock, ref, "not_a_checklist_matter", "not ours") and None,
            lambda: triage(clock, ref, "not_a_checklist_matter", "not ours either") and None,
        ],
    )
    assert len([r for r in results if r is not None]) == 1, results
    assert finding(ref).state == "declined"


def test_a_report_link_works_once_per_recipient(
    app: Flask, clock: FixedClock, released: None
) -> None:
    links = tokens("report")
    ref = report(app, clock, links[REPORTER])
    with pytest.raises(LinkUnusable) as used:
        report(app, clock, links[REPORTER])
    assert used.value.reason == "used"
    assert ref in used.value.message
    # Another recipient's link is theirs, and still works.
    assert report(app, clock, links["partner-ops@example.com"]) != ref
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Finding)) == 2


def test_a_report_link_expires(app: Flask, clock: FixedClock, released: None) -> None:
    token = tokens("report")[REPORTER]
    clock.advance(runtime(app).governance_settings().report_ttl)
    with pytest.raises(LinkUnusable) as expired:
        report(app, clock, token)
    assert expired.value.reason == "expired"


def test_a_report_is_about_an_application_of_the_release(
    app: Flask, clock: FixedClock, released: None
) -> None:
    token = tokens("report")[REPORTER]
    with pytest.raises(ValidationFailed, match="choose the application"):
        report(app, clock, token, application="storefront-web")
    with unit_of_work(db.session) as session, pytest.raises(ValidationFailed, match="impact"):
        findings.submit_report(
            session,
            token,
            application="payments-api",
            report=Report("It broke", "", "A check"),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
    assert report(app, clock, token).startswith("F-"), "refused reports leave the link usable"


def test_untriaged_findings_warn_in_later_gates_after_the_configured_age(
    app: Flask, clock: FixedClock, released: None
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    reported_at = clock.now()
    submit(clock, NEXT, {"payments-api": "7.4.0"})
    sign_everything(clock, NEXT)
    age = runtime(app).governance_settings().finding_warn_after
    assert age == timedelta(days=7)
    clock.set(reported_at + age - timedelta(microseconds=1))
    assert gate(app, clock, NEXT).warnings == ()
    clock.set(reported_at + age)
    result = gate(app, clock, NEXT)
    assert result.status == gate_rules.OPEN, "a warning never blocks"
    (warning,) = result.warnings
    assert (warning.code, warning.application) == (gate_rules.OPEN_FINDING, "payments-api")
    assert ref in warning.message
    assert warning.waiting_on == (BOARD,)
    # Triaged, it stops warning: the reviewers have looked at it.
    triage(clock, ref, "uncovered")
    assert gate(app, clock, NEXT).warnings == ()


def test_the_evidence_pack_of_a_release_lists_the_problems_reported_after_it(
    app: Flask, clock: FixedClock, released: None
) -> None:
    ref = report(app, clock, tokens("report")[REPORTER])
    triage(clock, ref, "uncovered", "add a large-refund scenario")
    pack = evidence.build(db.session, RELEASED, now=clock.now())
    (listed,) = pack["findings"]
    assert (listed["ref"], listed["application"], listed["state"]) == (
        ref,
        "payments-api",
        "accepted",
    )
    assert listed["checklist_version"] == 7
    assert listed["could_have_caught"] == REPORT.could_have_caught
    assert evidence.verify_pack(pack) == []
    assert [e["action"] for e in pack["audit_events"]].count("report_link.issued") == 4

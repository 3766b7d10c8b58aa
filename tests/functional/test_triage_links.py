"""A finding's reviewers triage it from the email they get, without a staff account: a personal
single-use link (GET shows, the POST decides), a page for each way it stops working, and fresh
links from the finding's staff page. Real SMTP on loopback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, Finding, OutboxMessage, TriageLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.finding import Report
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import findings
from gatekeeper.signing import TokenService
from tests.conftest import TEST_KEY
from tests.functional.web_helpers import ADMIN, add_staff, client, csrf, post, sign_in
from tests.support.governance import (
    BOARD,
    approve,
    checklist_dir,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
    write_version,
)
from tests.support.mail import catcher, link_to, messages_to, point_mail_at, run_worker

RELEASED = "2026.10-triage"
REPORTER = "refunds-desk@example.com"
RATIONALE = "Large refunds are checked by the payments provider, not in our release"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return checklist_dir(tmp_path)


@pytest.fixture
def reported(app: Flask, clock: FixedClock, smtp: MailCatcher, directory: Path) -> str:
    """payments-api v7 released, a problem reported as F-1, and its emails delivered; returns
    the path of the triage link emailed to BOARD, payments-api's only reviewer (no account)."""
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, RELEASED, {"payments-api": "7.3.2"})
    sign_everything(clock, RELEASED)
    release(app, clock, RELEASED)
    with unit_of_work(db.session) as session:
        findings.submit_report(
            session,
            tokens("report")[REPORTER],
            application="payments-api",
            report=Report("Refunds over 1,000 EUR stayed queued", "A day late", "A big refund"),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
    run_worker(app)
    return link_to(smtp, BOARD, "review/findings")


def finding() -> Finding:
    db.session.rollback()
    return findings.get_finding(db.session, 1)


def decide(browser: FlaskClient, path: str, **form: str) -> tuple[int, str]:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    response = browser.post(path, data={"csrf_token": csrf(page.text), **form})
    return response.status_code, response.text


def test_a_reviewer_without_an_account_triages_the_finding_from_the_email(
    app: Flask, smtp: MailCatcher, reported: str
) -> None:
    (mail,) = [m for m in messages_to(smtp, BOARD) if "Finding F-1" in m.subject]
    assert "/governance/findings/" not in mail.text, "no link to a page they cannot sign in to"
    assert "works once" in mail.text
    browser = client(app)
    assert browser.get("/governance/findings/1").headers["Location"].startswith("/login")
    page = browser.get(reported)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert "Refunds over 1,000 EUR stayed queued" in page.text
    assert f"You are triaging as <strong>{BOARD}</strong>" in page.text
    assert browser.head(reported).status_code == 200
    assert finding().state == "open", "opening the link decides nothing"
    code, text = decide(browser, reported, classification="not_a_checklist_matter", rationale="")
    assert code == 422
    assert "say why the finding is not a checklist matter" in text
    assert finding().state == "open"
    code, text = decide(
        browser, reported, classification="not_a_checklist_matter", rationale=RATIONALE
    )
    assert code == 200, text
    assert 'data-state="declined"' in text
    assert (finding().state, finding().triaged_by, finding().rationale) == (
        "declined",
        BOARD,
        RATIONALE,
    )
    used = browser.get(reported)
    assert (used.status_code, 'data-reason="used"' in used.text) == (410, True)
    assert "You already triaged F-1" in used.text
    assert browser.post(reported, data={"csrf_token": csrf(page.text)}).status_code == 410
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "finding.declined"))
    assert event is not None
    assert event.actor == BOARD


def test_a_decision_made_on_the_staff_page_ends_the_link(
    app: Flask, reported: str, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        findings.triage(
            session,
            1,
            classification="not_a_checklist_matter",
            actor=ADMIN,
            rationale="Out of scope",
            clock=clock,
        )
    decided = client(app).get(reported)
    assert (decided.status_code, 'data-reason="decided"' in decided.text) == (410, True)
    assert f"F-1 was already declined by {ADMIN}" in decided.text


def test_nobody_but_a_current_reviewer_can_use_a_triage_link(
    app: Flask,
    smtp: MailCatcher,
    reported: str,
    clock: FixedClock,
    directory: Path,
) -> None:
    browser = client(app)
    token = reported.rsplit("/", 1)[1]
    # Another purpose's token, a made-up link and another key's are no triage links.
    report_token = tokens("report")["settlement-lead@example.com"]
    guesses = [TokenService([k], "triage", 60, clock) for k in (TEST_KEY, "x" * 40)]
    for path in (
        f"/review/findings/{report_token}",
        *(f"/review/findings/{g.dumps({'l': 1, 'n': 'guess'})}" for g in guesses),
        f"/review/{token}",
        f"/report/{token}",
    ):
        page = browser.get(path)
        assert (page.status_code, "not valid" in page.text) == (404, True), path
    # A newer approved version names another reviewer: BOARD's link no longer works.
    path = write_version(directory, "payments-api", 8)
    path.write_text(path.read_text().replace(BOARD, "risk-board@example.com", 1))
    sync(app, clock, directory)
    approve(clock, "payments-api", 8, reviewer="risk-board@example.com")
    revoked = browser.get(reported)
    assert (revoked.status_code, 'data-reason="revoked"' in revoked.text) == (410, True)
    assert "no longer a governance reviewer of the payments-api checklist" in revoked.text
    assert finding().state == "open"


def test_an_expired_link_says_who_can_send_a_new_one_and_staff_can(
    app: Flask, smtp: MailCatcher, reported: str, clock: FixedClock
) -> None:
    clock.advance(runtime(app).governance_settings().triage_ttl + timedelta(seconds=1))
    expired = client(app).get(reported)
    assert (expired.status_code, 'data-reason="expired"' in expired.text) == (410, True)
    assert "governance admin can email a new one" in expired.text
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    page = admin.get("/governance/findings/1")
    assert 'data-testid="email-triage-links"' in page.text
    sent = post(admin, "/governance/findings/1/links")
    assert sent.status_code == 302
    assert f"emailed to {BOARD}" in admin.get("/governance/findings/1").text
    run_worker(app)
    fresh = link_to(smtp, BOARD, "review/findings")
    assert fresh != reported
    code, text = decide(client(app), fresh, classification="uncovered", rationale="")
    assert (code, 'data-state="accepted"' in text) == (200, True)
    again = post(admin, "/governance/findings/1/links")
    assert again.status_code == 409, "nothing left to triage"


def test_a_triage_email_is_moot_once_the_finding_is_triaged(
    app: Flask, clock: FixedClock, directory: Path
) -> None:
    with catcher() as box:
        point_mail_at(app, box.port)
        sync(app, clock, directory)
        approve(clock, "payments-api", 7)
        submit(clock, RELEASED, {"payments-api": "7.3.2"})
        sign_everything(clock, RELEASED)
        release(app, clock, RELEASED)
        with unit_of_work(db.session) as session:
            findings.submit_report(
                session,
                tokens("report")[REPORTER],
                application="payments-api",
                report=Report("It broke", "Customers waited", "A scenario"),
                settings=runtime(app).governance_settings(),
                clock=clock,
            )
            findings.triage(session, 1, classification="uncovered", actor=ADMIN, clock=clock)
        run_worker(app)
        assert not [m for m in messages_to(box, BOARD) if "Finding F-1" in m.subject]
    db.session.rollback()
    assert db.session.scalars(sa.select(TriageLink.reviewer)).all() == [BOARD]
    (why,) = db.session.scalars(
        sa.select(OutboxMessage.last_error).where(
            OutboxMessage.state == "moot", OutboxMessage.template == "finding_reported"
        )
    ).all()
    assert f"F-1 was already accepted by {ADMIN}" in why


def test_the_emailed_link_classifies_an_escape_past_a_named_item(app: Flask, reported: str) -> None:
    browser = client(app)
    page = browser.get(reported)
    assert '<option value="build.artifacts-from-ci">' in page.text, "items of v7 are offered"
    code, text = decide(browser, reported, classification="escaped_past", item="build.nope")
    assert code == 422
    assert "build.nope is not an item of the checklist version" in text
    assert finding().state == "open"
    code, text = decide(
        browser, reported, classification="escaped_past", item="security.dependency-scan"
    )
    assert code == 200, text
    assert "escaped past an item" in text
    triaged = finding()
    assert (triaged.state, triaged.classification, triaged.triaged_by) == (
        "accepted",
        "escaped_past",
        BOARD,
    )
    assert (triaged.escaped_section_id, triaged.escaped_item_id) == ("security", "dependency-scan")
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "finding.accepted"))
    assert event is not None
    assert '"item":"security.dependency-scan"' in event.details

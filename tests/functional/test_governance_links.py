"""Review and report links end to end: real SMTP on loopback, the links followed in a browser
client. GET shows and changes nothing, the POST decides once, each purpose has its own salt."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import Finding, GovernanceReview, ReviewLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import CaughtMessage, MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import signoffs
from gatekeeper.signing import TokenService
from gatekeeper.web.serving import redact
from tests.conftest import TEST_KEY
from tests.functional.api_helpers import (
    API_PREFIX,
    Api,
    create_package,
    create_token,
    sign,
)
from tests.functional.web_helpers import client, csrf
from tests.support.governance import BOARD, UX_LEAD, approve, checklist_dir, write_version
from tests.support.mail import link_to, messages_to, run_worker

AUTHOR = "dev@example.com"
KEY = "2026.11-gl"
REPORTER = "refunds-desk@example.com"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return checklist_dir(tmp_path)


def cli_sync(runner: FlaskCliRunner, directory: Path, author: str = AUTHOR) -> str:
    result = runner.invoke(cli, ["checklists", "sync", str(directory), "--author", author])
    assert result.exit_code == 0, result.output
    return result.output


def mails(smtp: MailCatcher, who: str, subject: str) -> list[CaughtMessage]:
    return [m for m in messages_to(smtp, who) if subject in m.subject]


def count(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def post(browser: FlaskClient, path: str, **form: str | list[str]) -> tuple[int, str]:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    response = browser.post(path, data={"csrf_token": csrf(page.text), **form})
    return response.status_code, response.text


# --- reviews ---------------------------------------------------------------------------------


def test_a_synced_version_is_approved_through_the_emailed_link(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, directory: Path
) -> None:
    cli_sync(runner, directory)
    assert run_worker(app).delivery.sent == 5
    path = link_to(smtp, BOARD, "review", "(payments-api)")
    browser = client(app)
    page = browser.get(path)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert 'data-kind="new_version"' in page.text
    # Where the item counts go; a first version has no approved items or releases to count.
    assert 'data-testid="item-stats"' in page.text
    assert "No checklist items yet." in page.text
    assert 'data-testid="diff-first"' in page.text, "no approved version yet to compare with"
    assert "Run the end-of-day settlement report" in page.text
    assert f"You are reviewing as <strong>{BOARD}</strong>" in page.text
    assert browser.head(path).status_code == 200
    assert count(GovernanceReview) == 0, "opening the link decides nothing"
    code, text = post(browser, path, action="approve", consulted="")
    assert code == 422
    assert "Say which key users you consulted" in text
    code, text = post(browser, path, action="approve", consulted="Dana and Malik, on a call")
    assert code == 200, text
    assert 'data-outcome="approved"' in text
    assert "next scheduled review is due 2027-02-21" in text
    used = browser.get(path)
    assert used.status_code == 410
    assert 'data-reason="used"' in used.text
    assert browser.post(path, data={"csrf_token": csrf(page.text)}).status_code == 410
    assert count(GovernanceReview) == 1
    run_worker(app)
    (told,) = mails(smtp, "payments-team@example.com", "v7: approved by release-board")
    assert "Key users consulted: Dana and Malik, on a call" in told.text
    assert mails(smtp, AUTHOR, "Payments API checklist v7: approved")
    (receipt,) = mails(smtp, BOARD, "Payments API checklist v7: approved")
    assert "did not record this review" in receipt.text


def test_the_review_page_shows_the_diff_against_the_approved_version(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, directory: Path, clock: FixedClock
) -> None:
    cli_sync(runner, directory)
    approve(clock, "payments-api", 7)
    write_version(directory, "payments-api", 8)
    clock.advance(timedelta(hours=1))
    assert "payments-api: created version 8 (pending review)" in cli_sync(runner, directory)
    run_worker(app)
    (mail,) = mails(smtp, BOARD, "Review needed: Payments API checklist v8")
    assert "scenarios: 1 added, 0 removed" in mail.text
    page = client(app).get(link_to(smtp, BOARD, "review", "(payments-api)"))
    assert page.status_code == 200
    assert "What changed since v7 (the approved version)" in page.text
    assert 'data-testid="diff-scenario" data-change="added"' in page.text
    assert "Refund more than 1,000 EUR" in page.text


def test_the_author_may_send_back_but_not_approve(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, directory: Path
) -> None:
    cli_sync(runner, directory, author=BOARD)
    run_worker(app)
    path = link_to(smtp, BOARD, "review", "(payments-api)")
    browser = client(app)
    page = browser.get(path)
    assert 'data-testid="author-note"' in page.text
    assert re.search(r'value="approve"[^>]*disabled', page.text)
    code, text = post(browser, path, action="approve", consulted="Dana")
    assert code == 422
    assert "another reviewer must approve it" in text
    code, text = post(browser, path, action="request_changes", notes="Add a large refund")
    assert (code, 'data-outcome="changes_requested"' in text) == (200, True)
    run_worker(app)
    (told,) = mails(smtp, "payments-team@example.com", "changes requested")
    assert "Add a large refund" in told.text


def test_another_reviewers_decision_or_a_newer_version_ends_a_link(
    app: Flask,
    runner: FlaskCliRunner,
    smtp: MailCatcher,
    directory: Path,
    clock: FixedClock,
) -> None:
    cli_sync(runner, directory)
    run_worker(app)
    board, ux = (link_to(smtp, who, "review", "(storefront-web)") for who in (BOARD, UX_LEAD))
    code, _ = post(client(app), board, action="approve", consulted="Support lead")
    assert code == 200
    decided = client(app).get(ux)
    assert (decided.status_code, 'data-reason="decided"' in decided.text) == (410, True)
    assert "already approved by release-board@example.com" in decided.text
    # payments-api v7 is still pending when v8 arrives: its links now say so.
    v7 = link_to(smtp, BOARD, "review", "(payments-api)")
    write_version(directory, "payments-api", 8)
    clock.advance(timedelta(minutes=5))
    cli_sync(runner, directory)
    replaced = client(app).get(v7)
    assert (replaced.status_code, 'data-reason="superseded"' in replaced.text) == (410, True)
    assert "replaced by version 8" in replaced.text


def test_an_expired_review_link_has_its_own_page(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, directory: Path, clock: FixedClock
) -> None:
    cli_sync(runner, directory)
    run_worker(app)
    path = link_to(smtp, BOARD, "review", "(payments-api)")
    clock.advance(runtime(app).governance_settings().review_ttl + timedelta(seconds=1))
    page = client(app).get(path)
    assert (page.status_code, 'data-reason="expired"' in page.text) == (410, True)


# --- reports ---------------------------------------------------------------------------------


@pytest.fixture
def released(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, directory: Path, clock: FixedClock
) -> None:
    """payments-api v7 approved; a package with it released through the JSON API."""
    cli_sync(runner, directory)
    approve(clock, "payments-api", 7)
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    sign(clock, KEY)
    api = Api(app, create_token(clock, "ci"))
    gate = api.get(f"{API_PREFIX}/packages/{KEY}/gate").json
    assert gate is not None
    assert gate["status"] == "open"
    released = api.post(f"{API_PREFIX}/packages/{KEY}/release", json={"digest": gate["digest"]})
    assert released.status_code == 200, released.text
    run_worker(app)


def test_a_problem_reported_from_the_release_email_becomes_a_finding(
    app: Flask, smtp: MailCatcher, released: None
) -> None:
    (mail,) = mails(smtp, REPORTER, f"Released: Release {KEY}")
    assert "Report a problem found after release" in mail.html
    path = link_to(smtp, REPORTER, "report")
    managers = mails(smtp, "release-manager@example.com", "Released")
    assert managers, "the release manager is told too"
    assert not [m for m in managers if "/report/" in m.text], "but gets no report link"
    browser = client(app)
    page = browser.get(path)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "We never ask who is at fault" in page.text
    labels = re.findall(r"<label for=\"[^\"]+\">([^<]+)</label>", page.text)
    assert labels == [
        "Which application is it about?",
        "What happened?",
        "What was the impact?",
        "How bad is it?",
        "What could the release checklist have caught?",
    ]
    assert not re.search(r"\bwho\b", " ".join(labels), re.IGNORECASE)
    assert '<option value="payments-api" selected>' in page.text
    assert count(Finding) == 0, "opening the link files nothing"
    code, text = post(browser, path, application="payments-api", what_happened="It broke")
    assert code == 422
    assert count(Finding) == 0
    code, text = post(
        browser,
        path,
        application="payments-api",
        what_happened="Refunds over 1,000 EUR stayed queued",
        impact="Customers waited a day",
        could_have_caught="A scenario with a large refund",
    )
    assert code == 200, text
    assert 'data-ref="F-1"' in text
    again = browser.get(path)
    assert (again.status_code, 'data-reason="used"' in again.text) == (410, True)
    assert "recorded as finding F-1" in again.text
    run_worker(app)
    (told,) = mails(smtp, BOARD, "Finding F-1 on the payments-api checklist")
    assert "Customers waited a day" in told.text
    assert "http://127.0.0.1:5000/review/findings/" in told.text, "a personal triage link"


# --- purpose salts ---------------------------------------------------------------------------


def test_a_token_only_works_for_its_own_purpose(
    app: Flask,
    smtp: MailCatcher,
    released: None,
    runner: FlaskCliRunner,
    clock: FixedClock,
    directory: Path,
) -> None:
    create_package(clock, "2026.11-next", {"payments-api": "7.5.0"}, submit=False)
    with unit_of_work(db.session) as session:
        signoffs.submit_for_signoff(
            session,
            "2026.11-next",
            actor="release-manager@example.com",
            clock=clock,
            links=runtime(app).link_settings(),
        )
    run_worker(app)
    signoff = link_to(smtp, "settlement-lead@example.com", "s")
    report = link_to(smtp, REPORTER, "report")
    write_version(directory, "payments-api", 8)
    cli_sync(runner, directory)
    run_worker(app)
    review = link_to(smtp, BOARD, "review", "(payments-api)")
    token_of = {"s": signoff, "report": report, "review": review}
    browser = client(app)
    for kind, path in token_of.items():
        token = path.rsplit("/", 1)[1]
        assert browser.get(path).status_code == 200, kind
        for other in {"s", "report", "review"} - {kind}:
            page = browser.get(f"/{other}/{token}")
            assert page.status_code == 404, (kind, other)
            assert "not valid" in page.text
    # The right salt with another key, or a made-up link id, is no better.
    forged = TokenService(["x" * 40], "review", 3600, clock).dumps({"l": 1, "n": "guess"})
    assert browser.get(f"/review/{forged}").status_code == 404
    genuine_key = TokenService([TEST_KEY], "review", 3600, clock).dumps({"l": 1, "n": "guess"})
    assert browser.get(f"/review/{genuine_key}").status_code == 404
    assert browser.get(f"/report/{genuine_key}").status_code == 404
    assert count(ReviewLink) > 0


def test_the_request_log_never_shows_review_triage_or_report_tokens() -> None:
    for prefix in ("review", "review/findings", "report"):
        line = f'"GET /{prefix}/eyJsIjoxfQ.Zx9.abc-def HTTP/1.1" 200 -'
        assert redact(line) == f'"GET /{prefix}/[token] HTTP/1.1" 200 -'

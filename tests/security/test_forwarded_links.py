"""A link forwarded to a colleague who is signed in as someone else is refused, not used.

The sign-off would be recorded as the person the link was sent to, while someone else pressed the
button: with a staff session of another person open, link pages (sign-off, review, report) say
who is signed in and who the link belongs to, and their POST is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import Finding, GovernanceReview, ReviewLink, Signoff, SignoffLink
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.functional.web_helpers import ADMIN, add_user, client, csrf, fresh_csrf, sign_in
from tests.support import governance
from tests.support.flows import prepare
from tests.support.link_forms import positive_form, sign_link

pytestmark = pytest.mark.security

ENGINEER = "raj@example.com"
REPORTER = "refunds-desk@example.com"
REPORT_FORM = {
    "application": "payments-api",
    "what_happened": "Refunds over 1,000 EUR stayed queued",
    "impact": "Customers waited a day",
    "could_have_caught": "A scenario with a large refund",
}
REVIEW_FORM = {"action": "approve", "consulted": "Dana and Malik, in the ops call"}


def count(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def assert_refused_to(browser: FlaskClient, path: str, form: dict[str, str], bound: str) -> None:
    """GET names both people and offers no form to decide; a POST is refused too."""
    page = browser.get(path)
    assert page.status_code == 403, page.text
    assert page.headers["Cache-Control"] == "no-store", "still a token page"
    assert 'data-testid="link-for-someone-else"' in page.text
    assert f"You are signed in as <strong>{ADMIN}</strong>" in page.text
    assert f"this link belongs to <strong>{bound}</strong>" in page.text
    assert not re.search(r'name="(r\d+-decision|action|what_happened)"', page.text)
    refused = browser.post(path, data={**form, "csrf_token": fresh_csrf(browser)})
    assert refused.status_code == 403
    assert 'data-testid="link-for-someone-else"' in refused.text


@pytest.fixture
def admin(app: Flask, clock: FixedClock) -> FlaskClient:
    add_user(clock, ADMIN, users.ADMIN)
    return sign_in(app, ADMIN)


def test_a_forwarded_signoff_link_is_refused_while_someone_else_is_signed_in(
    app: Flask, clock: FixedClock, admin: FlaskClient
) -> None:
    path = f"/s/{prepare(app, clock)[ENGINEER]}"
    genuine = positive_form(client(app).get(path).text)
    assert_refused_to(admin, path, genuine, ENGINEER)
    assert count(Signoff) == 0
    assert db.session.scalar(
        sa.select(SignoffLink.state).where(SignoffLink.signer == ENGINEER)
    ) == ("active")


def test_signing_out_from_the_refusal_page_leads_back_to_the_link(
    app: Flask, clock: FixedClock, admin: FlaskClient
) -> None:
    path = f"/s/{prepare(app, clock)[ENGINEER]}"
    page = admin.get(path)
    assert page.status_code == 403
    signed_out = admin.post(
        "/logout", data={"csrf_token": csrf(page.text), "next": path}, follow_redirects=False
    )
    assert (signed_out.status_code, signed_out.headers["Location"]) == (302, path)
    assert sign_link(admin, path).status_code == 200
    assert set(db.session.scalars(sa.select(Signoff.signer))) == {ENGINEER}


def test_the_person_the_link_belongs_to_may_be_signed_in(app: Flask, clock: FixedClock) -> None:
    tokens = prepare(app, clock)
    add_user(clock, ENGINEER.upper(), users.GOVERNANCE_REVIEWER)
    browser = sign_in(app, ENGINEER)
    assert sign_link(browser, f"/s/{tokens[ENGINEER]}").status_code == 200
    assert set(db.session.scalars(sa.select(Signoff.signer))) == {ENGINEER}


def test_a_forwarded_review_link_is_refused_while_someone_else_is_signed_in(
    app: Flask, clock: FixedClock, admin: FlaskClient, tmp_path: Path
) -> None:
    governance.sync(app, clock, governance.checklist_dir(tmp_path))
    token = governance.tokens("review", about="(payments-api)")[governance.BOARD]
    assert_refused_to(admin, f"/review/{token}", REVIEW_FORM, governance.BOARD)
    assert count(GovernanceReview) == 0
    assert set(db.session.scalars(sa.select(ReviewLink.state))) == {"active"}
    add_user(clock, governance.BOARD, users.GOVERNANCE_REVIEWER)
    reviewer = sign_in(app, governance.BOARD)
    assert reviewer.get(f"/review/{token}").status_code == 200, "its own reviewer may be"


def test_a_forwarded_report_link_is_refused_while_someone_else_is_signed_in(
    app: Flask, clock: FixedClock, admin: FlaskClient, tmp_path: Path
) -> None:
    governance.sync(app, clock, governance.checklist_dir(tmp_path))
    governance.approve(clock, "payments-api", 7)
    governance.submit(clock, "2026.11-fw", {"payments-api": "7.4.0"})
    governance.sign_everything(clock, "2026.11-fw")
    governance.release(app, clock, "2026.11-fw")
    token = governance.tokens("report")[REPORTER]
    assert_refused_to(admin, f"/report/{token}", REPORT_FORM, REPORTER)
    assert count(Finding) == 0
    assert client(app).get(f"/report/{token}").status_code == 200, "without a session it works"

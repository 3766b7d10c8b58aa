"""Key users propose scenarios they rely on from their emailed links; an approved checklist
version adopts them (by `addresses: [P-n]` or by listing the scenario), or a reviewer declines
one with a rationale, and the proposer is told by email either way."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, ScenarioProposal
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import proposal as rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs, users
from tests.functional.web_helpers import add_user, client, csrf, sign_in
from tests.support.governance import (
    BOARD,
    MANAGER,
    NEW_SCENARIO,
    approve,
    checklist_dir,
    release,
    sign_everything,
    sync,
    tokens,
    write_version,
)
from tests.support.mail import messages_to, run_worker

KEY = "2026.12-r1"
REFUNDS = "refunds-desk@example.com"
SETTLEMENT = "settlement-lead@example.com"
REQUEST = re.compile(r'name="request" value="(\d+)"')
HOSTILE = 'Refund a split payment <script>alert("x")</script> & "quote"'


@pytest.fixture
def directory(app: Flask, clock: FixedClock, tmp_path: Path) -> Path:
    """payments-api v7 approved and a package with it in review: key users hold links."""
    found = checklist_dir(tmp_path)
    sync(app, clock, found)
    approve(clock, "payments-api", 7)
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY, "Refunds", "production", None, (packages.ApplicationSpec("payments-api", "7"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )
    return found


def signoff_path(who: str) -> str:
    db.session.rollback()
    return f"/s/{tokens('s')[who]}"


def propose(
    browser: FlaskClient, path: str, scenario: str, *, request: str | None = None, notes: str = ""
) -> tuple[int, str]:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf(page.text), "scenario": scenario, "notes": notes}
    if path.startswith("/s/"):
        data["request"] = request or REQUEST.search(page.text).group(1)  # type: ignore[union-attr]
    response = browser.post(f"{path}/propose", data=data)
    return response.status_code, response.text


def proposals() -> list[ScenarioProposal]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(ScenarioProposal).order_by(ScenarioProposal.id)))


def decline(app: Flask, clock: FixedClock, who: str, proposal_id: int, rationale: str) -> int:
    browser = sign_in(app, who)
    page = browser.get("/checklists/payments-api")
    response = browser.post(
        f"/governance/proposals/{proposal_id}/decline",
        data={"csrf_token": csrf(page.text), "rationale": rationale},
    )
    return response.status_code


def test_a_proposal_from_the_signoff_page_leaves_the_link_usable_and_is_adopted_by_addresses(
    app: Flask, clock: FixedClock, directory: Path, smtp: MailCatcher
) -> None:
    path = signoff_path(REFUNDS)
    browser = client(app)
    assert "Propose a scenario I rely on that is not listed" in browser.get(path).text
    status, text = propose(browser, path, HOSTILE, notes="Every Friday")
    assert (status, "proposed as P-1" in text) == (200, True), text
    (proposal,) = proposals()
    assert (proposal.proposed_by, proposal.state, proposal.scenario) == (REFUNDS, "open", HOSTILE)
    assert proposal.checklist_version is not None
    assert proposal.checklist_version.version == 7
    assert browser.get(path).status_code == 200, "the link still awaits its own answer"

    add_user(clock, BOARD, users.GOVERNANCE_REVIEWER)
    page = sign_in(app, BOARD).get("/checklists/payments-api").text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "addresses:\n  - P-1\nuser_validation:\n  scenarios:\n    - &#34;Refund" in page

    sign_everything(clock, KEY)
    release(app, clock, KEY)
    write_version(directory, "payments-api", 8, addresses=["P-1"])
    sync(app, clock, directory)
    approve(clock, "payments-api", 8)
    (adopted,) = proposals()
    assert adopted.state == rules.ADOPTED
    assert adopted.adopted_by_version is not None
    assert adopted.adopted_by_version.version == 8
    events = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("scenario.%"))
    ).all()
    assert list(events) == ["scenario.proposed", "scenario.adopted"]
    run_worker(app)
    (mail,) = [m for m in messages_to(smtp, REFUNDS) if "P-1" in m.subject]
    assert "version 8 of the payments-api checklist" in mail.text
    assert HOSTILE in mail.text


def test_a_version_listing_the_scenario_adopts_it_whatever_the_case_and_spacing(
    app: Flask, clock: FixedClock, directory: Path
) -> None:
    status, _ = propose(client(app), signoff_path(SETTLEMENT), "  " + NEW_SCENARIO.upper())
    assert status == 200
    sign_everything(clock, KEY)
    release(app, clock, KEY)
    write_version(directory, "payments-api", 8)
    sync(app, clock, directory)
    assert [p.state for p in proposals()] == ["open"], "adopted on approval, not on sync"
    approve(clock, "payments-api", 8)
    assert [p.state for p in proposals()] == ["adopted"]


def test_a_reviewer_declines_with_a_rationale_and_the_proposer_is_told(
    app: Flask, clock: FixedClock, directory: Path, smtp: MailCatcher
) -> None:
    propose(client(app), signoff_path(REFUNDS), "Export refunds as CSV")
    (proposal_id,) = [p.id for p in proposals()]
    add_user(clock, BOARD, users.GOVERNANCE_REVIEWER)
    add_user(clock, "outsider@example.com", users.GOVERNANCE_REVIEWER)
    assert decline(app, clock, BOARD, proposal_id, "   ") == 422
    assert decline(app, clock, "outsider@example.com", proposal_id, "no") == 403
    assert decline(app, clock, BOARD, 99999999999, "no") == 404
    assert [p.state for p in proposals()] == ["open"]
    assert decline(app, clock, BOARD, proposal_id, "The CSV export is item exports-ok") == 302
    (declined,) = proposals()
    assert (declined.state, declined.decided_by) == ("declined", BOARD)
    assert decline(app, clock, BOARD, proposal_id, "again") == 409
    run_worker(app)
    (mail,) = [m for m in messages_to(smtp, REFUNDS) if "P-1" in m.subject]
    assert "not adopted" in mail.subject
    assert "item exports-ok" in mail.text


def test_link_rules_limits_and_scope(app: Flask, clock: FixedClock, directory: Path) -> None:
    path, other = signoff_path(REFUNDS), signoff_path(SETTLEMENT)
    browser = client(app)
    other_request = REQUEST.search(browser.get(other).text).group(1)  # type: ignore[union-attr]
    status, _ = propose(browser, path, "Someone else's", request=other_request)
    assert status == 404, "a link proposes only for its own key-user validation"
    assert propose(browser, path, "x" * (rules.MAX_SCENARIO_CHARS + 1))[0] == 422
    assert propose(browser, path, "   ")[0] == 422
    for n in range(rules.MAX_PER_LINK):
        assert propose(browser, path, f"Scenario {n}")[0] == 200
    status, text = propose(browser, path, "One too many")
    assert (status, "as many scenarios as one link allows" in text) == (422, True)
    assert {p.proposed_by for p in proposals()} == {REFUNDS}
    no_csrf = browser.post(f"{path}/propose", data={"scenario": "x", "request": other_request})
    assert no_csrf.status_code == 400, "no CSRF token, no proposal"
    token = csrf(browser.get(other).text)
    sign_everything(clock, KEY)
    used = browser.post(f"{other}/propose", data={"csrf_token": token, "scenario": "late"})
    assert used.status_code == 410, "a used link proposes nothing"
    assert len(proposals()) == rules.MAX_PER_LINK


def test_an_expired_link_proposes_nothing(app: Flask, clock: FixedClock, directory: Path) -> None:
    path = signoff_path(REFUNDS)
    browser = client(app)
    token = csrf(browser.get(path).text)
    clock.advance(timedelta(days=30))
    late = {"csrf_token": token, "scenario": "late", "request": "1"}
    response = browser.post(f"{path}/propose", data=late)
    assert response.status_code == 410
    assert proposals() == []


def test_a_key_user_proposes_from_the_confirmation_page_and_can_still_answer(
    app: Flask, clock: FixedClock, directory: Path
) -> None:
    sign_everything(clock, KEY)
    release(app, clock, KEY)
    clock.advance(timedelta(hours=24))
    run_worker(app)
    db.session.rollback()
    path = f"/confirm/{tokens('confirm')[REFUNDS]}"
    browser = client(app)
    status, text = propose(browser, path, "Reprint a refund receipt")
    assert (status, "proposed as P-1" in text) == (200, True), text
    (proposal,) = proposals()
    assert (proposal.source, proposal.proposed_by) == ("confirmation", REFUNDS)
    page = browser.get(path)
    answered = browser.post(path, data={"csrf_token": csrf(page.text), "answer": "works"})
    assert answered.status_code == 200
    again = browser.post(f"{path}/propose", data={"csrf_token": csrf(page.text), "scenario": "x"})
    assert again.status_code == 410, "an answered confirmation link proposes nothing"

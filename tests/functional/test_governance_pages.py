"""The staff governance pages: who sees them, the dashboard and its CSV, findings and triage."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import findings
from gatekeeper.services.tokens import SCOPE_GATE_READ
from tests.conftest import START, dispose, make_app
from tests.functional.api_helpers import API_PREFIX, Api, create_token
from tests.functional.web_helpers import (
    ADMIN,
    MANAGER,
    REVIEWER,
    add_staff,
    client,
    post,
    sign_in,
)
from tests.support.governance import (
    approve,
    checklist_dir,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
    write_version,
)

RELEASED = "2026.10-pages"
REPORTER = "refunds-desk@example.com"


@pytest.fixture
def governed(app: Flask, clock: FixedClock, tmp_path: Path) -> int:
    """Staff; payments-api v7 approved and released, one open finding, v8 pending review."""
    add_staff(clock)
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7, consulted="Dana and Malik")
    submit(clock, RELEASED, {"payments-api": "7.3.2"})
    sign_everything(clock, RELEASED)
    release(app, clock, RELEASED)
    browser = client(app)
    path = f"/report/{tokens('report')[REPORTER]}"
    page = browser.get(path)
    response = post(
        browser,
        path,
        {
            "application": "payments-api",
            "what_happened": "Refunds over 1,000 EUR stayed queued",
            "impact": "Customers waited a day",
            "could_have_caught": "=A large refund scenario",
        },
    )
    assert page.status_code == 200
    assert response.status_code == 200, response.text
    write_version(directory, "payments-api", 8)
    sync(app, clock, directory, author="dev@example.com")
    return 1


def test_only_governance_reviewers_and_admins_see_governance(app: Flask, governed: int) -> None:
    anonymous = client(app).get("/governance")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login")
    manager = sign_in(app, MANAGER)
    assert manager.get("/governance").status_code == 403
    assert manager.get("/governance/checklists.csv").status_code == 403
    assert manager.get(f"/governance/findings/{governed}").status_code == 403
    assert 'id="nav-governance"' not in manager.get("/").text
    for email in (REVIEWER, ADMIN):
        browser = sign_in(app, email)
        assert 'id="nav-governance"' in browser.get("/").text
        assert browser.get("/governance").status_code == 200


def test_the_dashboard_lists_every_checklist_with_its_governance_state(
    app: Flask, governed: int, clock: FixedClock
) -> None:
    clock.set(START + timedelta(days=17))
    page = sign_in(app, REVIEWER).get("/governance")
    text = page.text
    assert text.count('data-testid="checklist-row"') == 3
    payments = text.split('data-application="payments-api"')[1].split("</tr>")[0]
    assert 'data-application="payments-api" data-standing="ok"' in text
    assert "v7 approved" in payments
    assert "v8 pending review" in payments
    assert "2027-02-21" in payments
    assert 'data-open="1"' in payments
    assert "consulted 2026-11-23: Dana and Malik" in payments
    assert "last validated a release 2026-11-23" in payments
    storefront = text.split('data-application="storefront-web"')[1].split("</tr>")[0]
    assert "none approved" in storefront
    assert "v12 pending review" in storefront


def test_the_dashboard_exports_csv(app: Flask, governed: int, clock: FixedClock) -> None:
    clock.set(START + timedelta(days=90))
    response = sign_in(app, ADMIN).get("/governance/checklists.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="checklist-governance-20270221.csv"'
    )
    rows = {r["application"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == {"identity-platform", "payments-api", "storefront-web"}
    assert rows["payments-api"]["review_standing"] == "overdue"
    assert rows["payments-api"]["open_findings"] == "1"
    assert rows["payments-api"]["pending_versions"] == "8"
    assert rows["storefront-web"]["review_standing"] == "not_approved"


def test_a_finding_is_declined_with_a_rationale_from_its_page(
    app: Flask, governed: int, clock: FixedClock
) -> None:
    browser = sign_in(app, REVIEWER)
    listing = browser.get("/governance/findings")
    assert 'data-ref="F-1" data-state="open"' in listing.text
    page = browser.get(f"/governance/findings/{governed}")
    assert page.status_code == 200
    assert "=A large refund scenario" in page.text
    assert 'data-state="open"' in page.text
    refused = post(
        browser, f"/governance/findings/{governed}", {"classification": "not_a_checklist_matter"}
    )
    assert refused.status_code == 422
    assert "say why the finding is not a checklist matter" in refused.text
    assert findings.get_finding(db.session, governed).state == "open"
    db.session.rollback()
    done = post(
        browser,
        f"/governance/findings/{governed}",
        {
            "classification": "not_a_checklist_matter",
            "rationale": "A bank outage that day, not the release",
        },
    )
    assert done.status_code == 302
    page = browser.get(done.headers["Location"])
    assert "F-1 declined." in page.text
    assert 'data-state="declined"' in page.text
    assert "A bank outage that day" in page.text
    assert 'data-testid="triage-form"' not in page.text, "declined is final"
    actor = db.session.scalar(
        sa.select(AuditEvent.actor).where(AuditEvent.action == "finding.declined")
    )
    assert actor == REVIEWER
    assert 'data-testid="no-findings"' in browser.get("/governance/findings").text
    declined = browser.get("/governance/findings?state=declined").text
    assert 'data-ref="F-1" data-state="declined"' in declined


def test_a_finding_is_accepted_from_its_page(app: Flask, governed: int) -> None:
    browser = sign_in(app, ADMIN)
    done = post(browser, f"/governance/findings/{governed}", {"classification": "uncovered"})
    assert done.status_code == 302
    page = browser.get(f"/governance/findings/{governed}")
    assert 'data-state="accepted"' in page.text
    assert 'value="uncovered"' not in page.text, "an accepted finding can only be declined now"
    assert 'value="not_a_checklist_matter"' in page.text
    assert post(
        browser, f"/governance/findings/{governed}", {"classification": "address"}
    ).status_code == (422)


def test_review_links_can_be_sent_again_from_the_dashboard(
    app: Flask, governed: int, clock: FixedClock
) -> None:
    before = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.template == "review_request")
    )
    browser = sign_in(app, REVIEWER)
    for application, expected in (("payments-api", "v8"), ("identity-platform", "v4")):
        response = post(browser, f"/governance/checklists/{application}/remind")
        assert response.status_code == 302
        assert (
            f"Review links for {application} {expected} emailed to"
            in browser.get("/governance").text
        )
    db.session.rollback()
    after = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.template == "review_request")
    )
    assert after == before + 1 + 2
    assert post(browser, "/governance/checklists/nope/remind").status_code == 404


def test_an_untriaged_finding_warns_on_later_packages_in_the_ui_and_the_api(
    app: Flask, governed: int, clock: FixedClock
) -> None:
    submit(clock, "2026.11-next", {"payments-api": "7.4.0"})
    browser = sign_in(app, MANAGER)
    api = Api(app, create_token(clock, "ci", [SCOPE_GATE_READ]))
    clock.set(START + timedelta(days=7) - timedelta(microseconds=1))
    assert 'data-code="OPEN_FINDING"' not in browser.get("/packages/2026.11-next").text
    assert api.get(f"{API_PREFIX}/packages/2026.11-next/gate").json["warnings"] == []  # type: ignore[index]
    clock.set(START + timedelta(days=7))
    page = browser.get("/packages/2026.11-next").text
    assert 'data-code="OPEN_FINDING"' in page
    assert "finding F-1 on payments-api" in page
    warnings = api.get(f"{API_PREFIX}/packages/2026.11-next/gate").json["warnings"]  # type: ignore[index]
    assert [w["code"] for w in warnings] == ["OPEN_FINDING"]


def test_the_staff_page_classifies_and_the_dashboard_counts_the_escape(
    app: Flask, governed: int
) -> None:
    browser = sign_in(app, REVIEWER)
    refused = post(browser, f"/governance/findings/{governed}", {"classification": "escaped_past"})
    assert refused.status_code == 422
    assert "name the checklist item it escaped past" in refused.text
    done = post(
        browser,
        f"/governance/findings/{governed}",
        {"classification": "escaped_past", "item": "build.artifacts-from-ci"},
    )
    assert done.status_code == 302
    page = browser.get(f"/governance/findings/{governed}").text
    assert 'data-class="escaped_past"' in page
    assert "<code>build.artifacts-from-ci</code>" in page
    dashboard = browser.get("/governance")
    row = dashboard.text.split('data-item="payments-api:build.artifacts-from-ci"', 1)[1]
    cells = row.split("</tr>", 1)[0]
    # One release evaluated it, it passed there, one finding escaped past it.
    assert '<td data-label="Releases evaluated">1</td>' in cells
    assert '<td data-label="Failed before release">0</td>' in cells
    assert '<td data-label="Findings escaped past it">1</td>' in cells
    assert (
        'data-never-fires="no"'
        in dashboard.text.split('data-item="payments-api:build.artifacts-from-ci"', 1)[1][:40]
    )


def test_never_fires_follows_the_setting(
    app: Flask, governed: int, tmp_path: Path, clock: FixedClock
) -> None:
    one = make_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        tmp_path / "one",
        clock,
        GATEKEEPER_NEVER_FIRES_RELEASES="1",
    )
    with one.app_context():
        text = sign_in(one, REVIEWER).get("/governance").text
    dispose(one)
    flagged = text.split('data-item="payments-api:build.artifacts-from-ci"', 1)[1][:40]
    assert 'data-never-fires="yes"' in flagged
    assert 'data-never-fires="yes"' not in sign_in(app, REVIEWER).get("/governance").text


def test_charts_are_svg_images_without_script_and_the_csp_holds(app: Flask, governed: int) -> None:
    browser = sign_in(app, REVIEWER)
    page = browser.get("/governance")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "<script" not in page.text
    for name in ("change-failure-rate", "lead-time", "findings-by-class"):
        assert f'src="/governance/charts/{name}.svg" alt="' in page.text
        chart = browser.get(f"/governance/charts/{name}.svg")
        assert chart.status_code == 200
        assert chart.mimetype == "image/svg+xml"
        assert "<script" not in chart.text
        assert "<svg" in chart.text
        assert chart.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "script-src" not in chart.headers["Content-Security-Policy"]
    assert "<caption>Change failure rate per application and month</caption>" in page.text
    assert client(app).get("/governance/charts/lead-time.svg").status_code == 302


def test_change_failure_rate_table_and_csv(app: Flask, governed: int) -> None:
    browser = sign_in(app, REVIEWER)
    month = START.strftime("%Y-%m")
    page = browser.get("/governance").text
    assert f'data-application="payments-api" data-month="{month}"' in page
    exported = browser.get("/governance/change-failure-rate.csv")
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["application", "month", "released_packages", "with_findings", "rate"]
    assert ["payments-api", month, "1", "1", "1.000"] in rows


def test_the_command_line_triages_as_a_named_reviewer(app: Flask, governed: int) -> None:
    runner = app.test_cli_runner()
    refused = runner.invoke(
        cli,
        [
            "findings",
            "triage",
            "F-1",
            "--class",
            "uncovered",
            "--reviewer",
            "someone@example.com",
        ],
    )
    assert refused.exit_code == 1
    assert "not a governance reviewer" in refused.output
    done = runner.invoke(
        cli,
        [
            "findings",
            "triage",
            "F-1",
            "--class",
            "escaped_past",
            "--item",
            "security.dependency-scan",
            "--reviewer",
            "release-board@example.com",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "F-1: accepted, escaped past an item (security.dependency-scan)" in done.output
    listed = runner.invoke(cli, ["findings", "list", "--json"])
    assert '"classification": "escaped_past"' in listed.output

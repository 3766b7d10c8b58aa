"""The release manager's pages over HTTP: assemble → plan → submit → board → edit → remind →
release or cancel, and the dashboard; query counts that do not grow with the data."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, Package, SignoffLink, SignoffRequest
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import boards, packages
from tests.conftest import SAMPLES
from tests.functional.api_helpers import (
    EVIDENCE,
    create_package,
    recorded_statements,
    sign,
    sync_and_approve,
    write_checklists,
)
from tests.functional.web_helpers import (
    ADMIN,
    MANAGER,
    OTHER_MANAGER,
    REVIEWER,
    add_staff,
    fresh_csrf,
    post,
    sign_in,
)

KEY = "2026.11-r3"
DIGEST = re.compile(r'id="release-digest" name="digest" type="hidden" value="([^"]+)"')
PLAN_SUMMARY = re.compile(
    r'data-testid="plan-summary" data-required="(\d+)" data-requests="(\d+)" data-people="(\d+)"'
)


@pytest.fixture
def staff(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)


@pytest.fixture
def manager(app: Flask, staff: None) -> FlaskClient:
    browser = sign_in(app, MANAGER)
    browser.get("/")  # clears the "signed in" message
    return browser


def state_of(key: str) -> tuple[str, int]:
    db.session.remove()
    found = db.session.execute(
        sa.select(Package.state, Package.revision).where(Package.key == key)
    ).one()
    return found.state, found.revision


def outbox(template: str) -> list[OutboxMessage]:
    db.session.remove()
    return list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.template == template)
            .order_by(OutboxMessage.id)
        )
    )


def assemble_form(**extra: str) -> dict[str, str]:
    return {
        "key": KEY,
        "title": "November release",
        "environment": "production",
        "planned_for": "2026-11-26",
        "app-payments-api": "on",
        "app-payments-api-version": "7.4.0",
        "app-payments-api-summary": "Refunds go through a queue",
        "app-storefront-web": "on",
        "app-storefront-web-version": "2026.11.2",
        **extra,
    }


def test_assemble_preview_the_plan_then_save_and_submit(app: Flask, manager: FlaskClient) -> None:
    page = manager.get("/packages/new")
    assert page.status_code == 200
    for slug in ("payments-api", "storefront-web", "identity-platform"):
        assert f'data-testid="pick-{slug}"' in page.text
    plan = post(manager, "/packages/new", {**assemble_form(), "action": "plan"})
    assert plan.status_code == 200
    assert 'data-testid="plan"' in plan.text
    assert 'data-email="raj@example.com"' in plan.text
    assert 'data-email="settlement-lead@example.com"' in plan.text
    assert "payments-api: key-user validation" in plan.text
    assert 'value="7.4.0"' in plan.text, "the form keeps what was typed"
    assert 'data-testid="create-submit"' in plan.text
    summary = PLAN_SUMMARY.search(plan.text)
    assert summary, "the plan counts required sign-offs, requests and people"
    required, requests, people = (int(n) for n in summary.groups())
    assert (
        f"<strong>{required}</strong> required sign-offs, from the latest approved checklists: "
        f"<strong>{requests}</strong> requests to <strong>{people}</strong> people"
    ) in plan.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Package)) == 0
    # Save as a draft: the package page shows the same plan and a submit button.
    saved = post(manager, "/packages/new", {**assemble_form(), "action": "create"})
    assert saved.status_code == 302
    assert saved.headers["Location"] == f"/packages/{KEY}"
    assert state_of(KEY) == ("draft", 0)
    draft = manager.get(f"/packages/{KEY}")
    assert "Draft 2026.11-r3 saved" in draft.text
    assert 'data-testid="plan"' in draft.text
    assert 'data-testid="submit-package"' in draft.text
    submitted = post(manager, f"/packages/{KEY}/submit")
    assert submitted.status_code == 302
    assert state_of(KEY) == ("in_review", 1)
    emails = outbox("signoff_request")
    assert {m.to_address for m in emails} >= {"raj@example.com", "settlement-lead@example.com"}
    asked = db.session.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(SignoffRequest.signer)))
    ).one()
    assert tuple(asked) == (requests, people) == (requests, len(emails)), "as the plan said"
    board = manager.get(f"/packages/{KEY}")
    assert f"0 of {required} required sign-offs" in board.text
    assert 'data-testid="gate-status" data-status="pending"' in board.text
    assert 'data-item="payments-api/artifacts-from-ci" data-state="pending"' in board.text
    assert 'data-testid="remind-now"' in board.text


def test_create_and_submit_in_one_step(app: Flask, manager: FlaskClient) -> None:
    response = post(manager, "/packages/new", {**assemble_form(), "action": "submit"})
    assert response.status_code == 302
    assert state_of(KEY) == ("in_review", 1)
    assert outbox("signoff_request")


def test_the_assemble_form_explains_its_problems(app: Flask, manager: FlaskClient) -> None:
    missing = post(
        manager,
        "/packages/new",
        {**assemble_form(), "app-payments-api-version": "", "action": "plan"},
    )
    assert missing.status_code == 422
    assert "Give the version of this application that ships." in missing.text
    nothing = post(manager, "/packages/new", {"key": KEY, "title": "t", "environment": "p"})
    assert nothing.status_code == 422
    assert "Pick at least one application." in nothing.text
    bad_key = post(manager, "/packages/new", {**assemble_form(key="no spaces"), "action": "create"})
    assert bad_key.status_code == 422
    assert "must be 1-64 letters" in bad_key.text
    assert (
        post(manager, "/packages/new", {**assemble_form(), "action": "create"}).status_code == 302
    )
    again = post(manager, "/packages/new", {**assemble_form(), "action": "create"})
    assert again.status_code == 409
    assert "already exists" in again.text
    # Only applications with an approved checklist are read from the form.
    sneaky = post(
        manager,
        "/packages/new",
        {
            **assemble_form(key="other"),
            "app-unknown-app": "on",
            "app-unknown-app-version": "1",
            "action": "create",
        },
    )
    assert sneaky.status_code == 302
    db.session.remove()
    package = packages.get_package(db.session, "other")
    assert sorted(a.application.slug for a in package.applications) == [
        "payments-api",
        "storefront-web",
    ]


def test_the_board_shows_each_decision_validation_and_history(
    app: Flask, manager: FlaskClient, clock: FixedClock
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    sign(clock, KEY, application="payments-api", item="artifacts-from-ci", signer="raj@example.com")
    sign(
        clock,
        KEY,
        signer="sre-oncall@example.com",
        application="payments-api",
        decision=signoff.Decision(signoff.ITEM, signoff.FAIL, comment="alert did not fire"),
    )
    sign(
        clock,
        KEY,
        signer="refunds-desk@example.com",
        decision=signoff.Decision(
            signoff.KEY_USER,
            signoff.PROBLEM,
            comment="refund stuck <b>pending</b>",
            scenarios_confirmed=(0, 2),
        ),
    )
    sign(clock, KEY, application="storefront-web", limit=3)
    page = manager.get(f"/packages/{KEY}")
    assert page.status_code == 200
    text = page.text
    assert 'data-testid="gate-status" data-status="blocked"' in text
    assert 'data-item="payments-api/artifacts-from-ci" data-state="signed"' in text
    assert 'data-item="payments-api/dashboards-alerts" data-state="failed"' in text
    assert f'<a href="{EVIDENCE}" rel="noopener noreferrer nofollow">' in text
    assert "alert did not fire" in text
    assert 'data-email="refunds-desk@example.com" data-answer="problem"' in text
    assert "refund stuck &lt;b&gt;pending&lt;/b&gt;" in text, "comments are escaped"
    assert 'data-email="settlement-lead@example.com" data-answer="waiting"' in text
    assert text.count("✓ <span") >= 2
    assert "USER_PROBLEM_REPORTED" in text
    assert 'data-testid="release-unavailable"' in text
    # Edit the storefront: a new revision; payments-api's sign-offs carry forward.
    edit_page = manager.get(f"/packages/{KEY}/edit")
    assert 'value="2026.11.2"' in edit_page.text
    edited = post(
        manager,
        f"/packages/{KEY}/edit",
        {
            "title": "November release",
            "environment": "production",
            "app-payments-api": "on",
            "app-payments-api-version": "7.4.0",
            "app-payments-api-summary": "payments-api 7.4.0",
            "app-storefront-web": "on",
            "app-storefront-web-version": "2026.11.3",
            "app-storefront-web-summary": "hotfix",
        },
    )
    assert edited.status_code == 302
    assert state_of(KEY) == ("in_review", 2)
    page = manager.get(f"/packages/{KEY}")
    assert "Saved as revision 2" in page.text
    assert "storefront-web: version 2026.11.2 → 2026.11.3" in page.text
    assert re.search(
        r'data-testid="carried-forward" data-application="payments-api">payments-api unchanged: '
        r"(\d+) sign-off",
        page.text,
    )
    assert "carried from rev 1" in page.text
    assert 'data-item="storefront-web/' in page.text
    assert 'data-state="signed"' in page.text


TIMELINE_ROW = re.compile(r'data-testid="timeline-event" data-seq="(\d+)" data-action="([a-z_.]+)"')


def test_the_package_page_shows_its_audit_timeline(
    app: Flask, manager: FlaskClient, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(boards, "TIMELINE_ON_BOARD", 20)
    create_package(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    create_package(clock, "other", {"payments-api": "7.4.1"})
    clock.advance(timedelta(minutes=5))
    submitted = post(manager, "/packages/other/cancel")
    assert submitted.status_code == 302
    sign(clock, KEY, limit=3)
    page = manager.get(f"/packages/{KEY}").text
    rows = TIMELINE_ROW.findall(page)
    seqs = [int(seq) for seq, _ in rows]
    assert seqs == sorted(seqs, reverse=True), "newest first"
    actions = [action for _, action in rows]
    assert actions.count("signoff.recorded") == 3
    assert actions[-1] == "package.created"
    assert "package.cancelled" not in actions, "another package's events stay on its own page"
    assert "Sign-off recorded" in page
    assert "Package assembled" in page
    # Enough sign-offs push the board past its limit: it shows the newest, the full page all.
    sign(clock, KEY)
    page = manager.get(f"/packages/{KEY}").text
    shown = TIMELINE_ROW.findall(page)
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.package == KEY)
    )
    assert total > boards.TIMELINE_ON_BOARD
    assert len(shown) == boards.TIMELINE_ON_BOARD
    assert f"the latest {boards.TIMELINE_ON_BOARD} of {total} events" in page
    full = manager.get(f"/packages/{KEY}/timeline").text
    every = TIMELINE_ROW.findall(full)
    assert len(every) == total
    assert every[: len(shown)] == shown
    # The cancel came through the browser, so its event names where it came from.
    other = manager.get("/packages/other").text
    cancelled = other.split('data-action="package.cancelled"')[1].split("</tr>")[0]
    assert "127.0.0.1" in cancelled
    assert MANAGER in cancelled


def test_the_evidence_pack_downloads_and_verifies(
    app: Flask, manager: FlaskClient, clock: FixedClock, tmp_path: Path
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    sign(clock, KEY, limit=2)
    response = manager.get(f"/packages/{KEY}/evidence.html")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="gatekeeper-evidence-{KEY}.html"'
    saved = tmp_path / "evidence.html"
    saved.write_bytes(response.data)
    checked = app.test_cli_runner().invoke(cli, ["audit", "verify-export", str(saved)])
    assert checked.exit_code == 0, checked.output
    saved.write_text(response.text.replace("raj@example.com", "mallory@example.com"))
    tampered = app.test_cli_runner().invoke(cli, ["audit", "verify-export", str(saved)])
    assert tampered.exit_code == 1


def test_another_managers_timeline_and_evidence_are_not_found(
    app: Flask, staff: None, clock: FixedClock
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    browser = sign_in(app, OTHER_MANAGER)
    for path in (f"/packages/{KEY}/timeline", f"/packages/{KEY}/evidence.html"):
        assert browser.get(path).status_code == 404, path


def test_remind_now_sends_fresh_links_to_everyone_pending(
    app: Flask, manager: FlaskClient, clock: FixedClock
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    sign(clock, KEY, except_signer="sec-oncall@example.com")
    before = outbox("signoff_request")
    clock.advance(timedelta(hours=3))
    response = post(manager, f"/packages/{KEY}/remind")
    assert response.status_code == 302
    reminders = outbox("signoff_request")[len(before) :]
    assert [m.to_address for m in reminders] == ["sec-oncall@example.com"]
    assert reminders[0].subject.startswith("Reminder:")
    page = manager.get(f"/packages/{KEY}")
    assert "Reminder with a fresh link emailed to sec-oncall@example.com." in page.text
    db.session.remove()
    active = db.session.scalars(sa.select(SignoffLink).where(SignoffLink.state == "active")).all()
    assert [link.signer for link in active] == ["sec-oncall@example.com"]


def test_release_needs_the_digest_that_was_shown(
    app: Flask, manager: FlaskClient, clock: FixedClock
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    # Ana is one of two build engineers for a quorum-1 item: the gate opens without her.
    sign(clock, KEY, except_signer="ana@example.com")
    page = manager.get(f"/packages/{KEY}")
    assert 'data-status="open"' in page.text
    shown = DIGEST.search(page.text)
    assert shown
    sign(clock, KEY, signer="ana@example.com")  # still open, but no longer what was shown
    stale = post(manager, f"/packages/{KEY}/release", {"digest": shown.group(1), "notes": "go"})
    assert stale.status_code == 409
    assert "the gate changed" in stale.text
    assert 'data-testid="current-gate-status">open<' in stale.text
    assert state_of(KEY) == ("in_review", 1)
    page = manager.get(f"/packages/{KEY}")
    current = DIGEST.search(page.text)
    assert current
    assert current.group(1) != shown.group(1)
    released = post(
        manager, f"/packages/{KEY}/release", {"digest": current.group(1), "notes": "deployed"}
    )
    assert released.status_code == 302
    assert state_of(KEY) == ("released", 1)
    page = manager.get(f"/packages/{KEY}")
    assert 'data-testid="gate-status" data-status="released"' in page.text
    assert "deployed" in page.text
    assert 'data-testid="actions"' not in page.text
    dashboard = manager.get("/")
    assert 'data-testid="group-released"' in dashboard.text
    assert f'data-key="{KEY}"' in dashboard.text


def test_a_release_without_a_digest_is_refused(
    app: Flask, manager: FlaskClient, clock: FixedClock
) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    sign(clock, KEY)
    assert post(manager, f"/packages/{KEY}/release", {}).status_code == 422
    assert state_of(KEY) == ("in_review", 1)


def test_cancel_revokes_the_links(app: Flask, manager: FlaskClient, clock: FixedClock) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    response = post(manager, f"/packages/{KEY}/submit")
    assert response.status_code == 409, "already in review"
    assert post(manager, f"/packages/{KEY}/cancel").status_code == 302
    assert state_of(KEY) == ("cancelled", 1)
    page = manager.get(f"/packages/{KEY}")
    assert 'data-status="cancelled"' in page.text
    assert 'data-testid="cancel-package"' not in page.text
    assert manager.get(f"/packages/{KEY}/edit").status_code == 409
    assert post(manager, f"/packages/{KEY}/remind").status_code == 409


def test_governance_reviewers_and_admins(app: Flask, staff: None, clock: FixedClock) -> None:
    create_package(clock, KEY, {"payments-api": "7.4.0"})
    reviewer = sign_in(app, REVIEWER)
    page = reviewer.get(f"/packages/{KEY}")
    assert page.status_code == 200
    assert 'data-testid="actions"' not in page.text
    assert 'data-testid="nav-new-package"' not in page.text
    assert 'data-testid="nav-outbox"' not in page.text
    assert (
        reviewer.post(
            f"/packages/{KEY}/cancel", data={"csrf_token": fresh_csrf(reviewer)}
        ).status_code
        == 403
    )
    admin = sign_in(app, ADMIN)
    page = admin.get(f"/packages/{KEY}")
    assert 'data-testid="actions"' in page.text
    assert 'data-testid="nav-outbox"' in page.text
    assert post(admin, f"/packages/{KEY}/cancel").status_code == 302
    assert state_of(KEY) == ("cancelled", 1)


def test_dashboard_groups_packages_with_gate_progress_and_overdue(
    app: Flask, manager: FlaskClient, clock: FixedClock
) -> None:
    create_package(clock, "late", {"payments-api": "7.4.0"})
    sign(clock, "late", except_signer="sec-oncall@example.com")
    create_package(clock, "drafty", {"storefront-web": "1"}, submit=False)
    clock.advance(timedelta(days=3))
    page = manager.get("/")
    assert page.status_code == 200
    text = page.text
    in_review = text.split('data-testid="group-in_review"')[1].split('data-testid="group-draft"')[0]
    assert 'data-key="late"' in in_review
    assert 'data-status="pending"' in in_review
    assert re.search(r'<progress value="\d+" max="\d+"', in_review)
    assert "sec-oncall@example.com" in in_review
    assert "request(s) unanswered since 2026-11-23" in in_review
    drafts = text.split('data-testid="group-draft"')[1].split('data-testid="group-released"')[0]
    assert 'data-key="drafty"' in drafts


# --- query budgets ---------------------------------------------------------------------------

# SQL statements per dashboard view (transaction control not counted): the signed-in user, the
# ids of active packages, the ids of recent released/cancelled ones, then the batched gate
# material (packages, applications with pinned checklists, governance reviews, untriaged
# post-release findings, open learning reviews and action items, sign-offs; and the key users'
# post-release answers once a released package is listed); while a package is in review, the
# absences not yet over (who is away decides who is waited on: deputies); the newest approved
# freeze calendar; emergencies with open post-implementation reviews; and the audit head with
# the event at the witnessed sequence number (services/head_witness.py).
DASHBOARD_QUERY_BUDGET = 13
# Per package page: the user, the package id within reach, the gate material (10 queries, with
# the absences, the freeze calendar, the emergencies and the audit head), the revision
# history, the package's applications (for carried-forward counts) and the newest audit events
# with their total (one windowed query).
PACKAGE_PAGE_QUERY_BUDGET = 15


def _statements(browser: FlaskClient, path: str) -> list[str]:
    with recorded_statements() as statements:
        response = browser.get(path)
    assert response.status_code == 200, response.text
    return [s for s in statements if s.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]


def _dataset(
    clock: FixedClock, directory: Path, prefix: str, apps: int, items: int, count: int
) -> None:
    write_checklists(directory, applications=apps, items=items, prefix=prefix)
    sync_and_approve(directory, clock)
    for n in range(count):
        key = f"{prefix}-{n}"
        create_package(clock, key, {f"{prefix}-{i:02d}": "1.0" for i in range(apps)})
        sign(clock, key, limit=3 * apps)
    create_package(clock, f"{prefix}-draft", {f"{prefix}-00": "1"}, submit=False)
    create_package(clock, f"{prefix}-gone", {f"{prefix}-00": "1"})
    sign(clock, f"{prefix}-gone", limit=2)
    with unit_of_work(db.session) as session:
        packages.cancel_package(session, f"{prefix}-gone", actor=MANAGER, clock=clock)
        packages.edit_package(
            session,
            f"{prefix}-0",
            packages.PackageChanges(
                applications=tuple(
                    # The same summary as create_package gave: only application 00 changes.
                    packages.ApplicationSpec(
                        f"{prefix}-{i:02d}",
                        "1.1" if i == 0 else "1.0",
                        f"{prefix}-{i:02d} 1.0",
                    )
                    for i in range(apps)
                )
            ),
            actor=MANAGER,
            clock=clock,
        )


def test_dashboard_and_package_page_cost_the_same_queries_whatever_the_size(
    app: Flask, manager: FlaskClient, clock: FixedClock, tmp_path: Path
) -> None:
    _dataset(clock, tmp_path / "small", "small", apps=1, items=3, count=1)
    small_dashboard = _statements(manager, "/")
    small_page = _statements(manager, "/packages/small-0")
    _dataset(clock, tmp_path / "large", "large", apps=12, items=30, count=8)
    large_dashboard = _statements(manager, "/")
    large_page = _statements(manager, "/packages/large-0")
    assert len(small_dashboard) == DASHBOARD_QUERY_BUDGET, small_dashboard
    assert len(large_dashboard) == DASHBOARD_QUERY_BUDGET, large_dashboard
    assert len(small_page) == PACKAGE_PAGE_QUERY_BUDGET, small_page
    assert len(large_page) == PACKAGE_PAGE_QUERY_BUDGET, large_page
    page = manager.get("/packages/large-0")
    assert page.text.count('data-testid="board-item"') == 12 * 30
    assert page.text.count('data-testid="board-application"') == 12
    assert "carried from rev 1" in page.text
    dashboard = manager.get("/").text
    assert dashboard.count('data-testid="package-row"') == (1 + 2) + (8 + 2)

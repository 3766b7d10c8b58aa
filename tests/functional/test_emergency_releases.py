"""Emergency releases through every door: the JSON API (scope, owner, error envelope, the gate's
mode and deferred list), the CLI (exit codes), the package page (declare, review due by) and the
approver's emailed link (GET shows, POST approves, once)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Flask

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import EmergencyApproval
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import tokens
from tests.conftest import SAMPLES
from tests.functional.api_helpers import (
    API_PREFIX,
    RELEASE_MANAGER,
    Api,
    assert_envelope,
    create_token,
    sync_and_approve,
)
from tests.functional.web_helpers import client, csrf, sign_in
from tests.support.emergency import APPROVERS, E2E_SIGNERS, tokens_of
from tests.support.flows import decisions_for, submit

KEY = "2026.12-hotfix"
PACKAGES = f"{API_PREFIX}/packages"
HOTFIX = {
    "key": KEY,
    "title": "Checkout hotfix",
    "environment": "production",
    "applications": [{"application": "storefront-web", "version": "2026.12.1"}],
}


def _api(app: Flask, clock: FixedClock) -> Api:
    sync_and_approve(SAMPLES, clock)
    api = Api(app, create_token(clock, "ci-all"))
    assert api.post(PACKAGES, json=HOTFIX).status_code == 201
    assert api.post(f"{PACKAGES}/{KEY}/submit").status_code == 200
    return api


def _approve_by_link(app: Flask, approver: str) -> Any:
    browser = client(app)
    path = f"/emergency/{tokens_of('emergency_approval', 'emergency')[approver]}"
    page = browser.get(path)
    assert page.status_code == 200
    return browser.post(path, data={"csrf_token": csrf(page.text)})


def test_the_api_declares_and_the_gate_reports_emergency_mode(
    app: Flask, clock: FixedClock
) -> None:
    api = _api(app, clock)
    normal = api.get(f"{PACKAGES}/{KEY}/gate").json
    assert normal is not None
    assert (normal["mode"], normal["deferred"], normal["emergency"]) == ("normal", [], None)
    declared = api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": "Checkout is down"})
    assert declared.status_code == 200, declared.json
    body: dict[str, Any] = declared.json  # type: ignore[assignment]
    assert body["gate"]["mode"] == "emergency"
    assert body["gate"]["emergency"]["declared_by"] == RELEASE_MANAGER
    assert {b["code"] for b in body["gate"]["blockers"]} == {
        "EMERGENCY_APPROVAL_PENDING",
        "ITEM_PENDING",
    }
    assert body["gate"]["deferred"]
    again = api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": "Still down"})
    assert_envelope(again, 409, "conflict")
    empty = api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": ""})
    assert_envelope(empty, 422, "validation_failed")


def test_the_whole_emergency_through_the_api_and_the_links(app: Flask, clock: FixedClock) -> None:
    api = _api(app, clock)
    assert api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": "Down"}).status_code == 200
    for approver in APPROVERS[:2]:
        answered = _approve_by_link(app, approver)
        assert answered.status_code == 200
        assert 'data-testid="approved"' in answered.text
    token = tokens_of("signoff_request", "s")[E2E_SIGNERS[0]]
    submit(app, token, decisions_for(app, token, clock), clock)
    gate = api.get(f"{PACKAGES}/{KEY}/gate").json
    assert gate is not None
    assert gate["status"] == "open", gate["blockers"]
    released = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    assert released.status_code == 200, released.json
    after = api.get(f"{PACKAGES}/{KEY}/gate").json
    assert after is not None
    assert after["mode"] == "emergency"
    assert after["emergency"]["review"]["completed_at"] is None
    assert after["emergency"]["review"]["waiting_on"]


def test_another_managers_token_cannot_declare(app: Flask, clock: FixedClock) -> None:
    api = _api(app, clock)
    other = create_token(
        clock, "other", (tokens.SCOPE_PACKAGES_WRITE,), owner="other-rm@example.com"
    )
    refused = api.post(f"{PACKAGES}/{KEY}/emergency", token=other, json={"reason": "Mine"})
    assert_envelope(refused, 404, "not_found")
    reader = create_token(clock, "reader", (tokens.SCOPE_GATE_READ,))
    refused = api.post(f"{PACKAGES}/{KEY}/emergency", token=reader, json={"reason": "Mine"})
    assert_envelope(refused, 403, "permission_denied")


def test_an_approval_link_get_changes_nothing_and_works_once(app: Flask, clock: FixedClock) -> None:
    api = _api(app, clock)
    api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": "Checkout is down"})
    browser = client(app)
    path = f"/emergency/{tokens_of('emergency_approval', 'emergency')[APPROVERS[0]]}"
    for _ in range(2):
        page = browser.get(path)
        assert page.status_code == 200
        assert "Checkout is down" in page.text
        assert page.headers["Cache-Control"] == "no-store"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmergencyApproval)) == 0
    db.session.rollback()
    assert browser.post(path, data={"csrf_token": csrf(page.text)}).status_code == 200
    again = browser.get(path)
    assert 'data-reason="used"' in again.text
    no_csrf = client(app).post(
        f"/emergency/{tokens_of('emergency_approval', 'emergency')[APPROVERS[1]]}", data={}
    )
    assert no_csrf.status_code in (400, 422)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmergencyApproval)) == 1
    assert client(app).get("/emergency/not-a-token").status_code in (200, 404)


def test_the_cli_declares_with_documented_exit_codes(app: Flask, clock: FixedClock) -> None:
    _api(app, clock)
    runner = app.test_cli_runner()
    missing = runner.invoke(cli, ["packages", "emergency", KEY])
    assert missing.exit_code == 2
    empty = runner.invoke(cli, ["packages", "emergency", KEY, "--reason", " "])
    assert empty.exit_code == 2, empty.output
    unknown = runner.invoke(cli, ["packages", "emergency", "nope", "--reason", "x"])
    assert unknown.exit_code == 1
    declared = runner.invoke(cli, ["packages", "emergency", KEY, "--reason", "Checkout is down"])
    assert declared.exit_code == 0, declared.output
    # As the README's worked example shows it.
    assert declared.stdout.splitlines()[0] == (
        f"{KEY}: emergency declared by {RELEASE_MANAGER}; gate pending (mode emergency)"
    )
    assert "  deferred to the post-implementation review: 6" in declared.stdout
    checked = runner.invoke(cli, ["gate", "check", KEY, "--json"])
    assert json.loads(checked.stdout)["mode"] == "emergency"
    again = runner.invoke(cli, ["packages", "emergency", KEY, "--reason", "again"])
    assert again.exit_code == 1
    assert "already declared" in again.output


def test_the_package_page_declares_and_shows_the_emergency(app: Flask, clock: FixedClock) -> None:
    _api(app, clock)
    browser = sign_in(app, RELEASE_MANAGER)
    page = browser.get(f"/packages/{KEY}")
    assert 'data-testid="emergency-form"' in page.text
    answered = browser.post(
        f"/packages/{KEY}/emergency",
        data={"csrf_token": csrf(page.text), "reason": "Checkout is down"},
    )
    assert answered.status_code == 302
    shown = browser.get(f"/packages/{KEY}").text
    assert 'data-testid="emergency-panel"' in shown
    assert "Checkout is down" in shown
    assert 'data-testid="deferred"' in shown
    assert 'data-testid="emergency-form"' not in shown
    # The sign-off board marks what the emergency deferred: all but the required item.
    board = shown[shown.index('id="board-title"') :]
    assert board.count('data-testid="deferred-mark"') == 6
    e2e = board[board.index('data-item="storefront-web/e2e-suite"') :].split("</tr>")[0]
    assert "deferred-mark" not in e2e


def test_the_dashboard_badge_and_evidence_pack_mark_the_emergency(
    app: Flask, clock: FixedClock
) -> None:
    api = _api(app, clock)
    api.post(f"{PACKAGES}/{KEY}/emergency", json={"reason": "Checkout is down"})
    for approver in APPROVERS[:2]:
        _approve_by_link(app, approver)
    token = tokens_of("signoff_request", "s")[E2E_SIGNERS[0]]
    submit(app, token, decisions_for(app, token, clock), clock)
    gate = api.get(f"{PACKAGES}/{KEY}/gate").json
    assert gate is not None
    api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    browser = sign_in(app, RELEASE_MANAGER)
    dashboard = browser.get("/").text
    assert 'data-testid="emergency-mark"' in dashboard
    assert "review due by" in dashboard
    page = browser.get(f"/packages/{KEY}").text
    assert 'data-state="due"' in page
    pack = browser.get(f"/packages/{KEY}/evidence.html").text
    assert 'data-testid="evidence-emergency"' in pack
    assert "Checkout is down" in pack
    assert "Deferred to the post-implementation review" in pack
    url = app.test_cli_runner().invoke(cli, ["gate", "badge-url", KEY]).stdout.strip()
    badge = client(app).get(url.removeprefix("http://127.0.0.1:5000"))
    assert "gate: released, emergency" in badge.text

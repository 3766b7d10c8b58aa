"""The checklist catalogue (behind staff sign-in), version diffs, the outbox page and health."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES
from tests.functional.web_helpers import ADMIN, REVIEWER, add_user, client, post, sign_in
from tests.support.mail import dead_letter


@pytest.fixture
def reviewer(app: Flask, clock: FixedClock) -> FlaskClient:
    add_user(clock, REVIEWER, users.GOVERNANCE_REVIEWER)
    browser = sign_in(app, REVIEWER)
    browser.get("/")  # clears the "signed in" message
    return browser


def test_the_catalogue_needs_a_staff_session(app: Flask) -> None:
    response = client(app).get("/checklists")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/checklists"


def test_catalogue_lists_synced_checklists(
    app: Flask, runner: FlaskCliRunner, reviewer: FlaskClient
) -> None:
    empty = reviewer.get("/checklists")
    assert empty.status_code == 200
    assert "No checklists yet" in empty.text
    runner.invoke(cli, ["checklists", "sync", str(SAMPLES), "--author", CHECKLIST_AUTHOR])
    page = reviewer.get("/checklists")
    assert page.status_code == 200
    assert "Payments API" in page.text
    assert "pending review" in page.text


def test_checklist_page_shows_items_key_users_and_digest(
    app: Flask, runner: FlaskCliRunner, reviewer: FlaskClient
) -> None:
    runner.invoke(cli, ["checklists", "sync", str(SAMPLES), "--author", CHECKLIST_AUTHOR])
    page = reviewer.get("/checklists/payments-api/7")
    assert page.status_code == 200
    assert "Release artifacts were built by CI" in page.text
    assert "Dana Ortiz" in page.text
    assert "Refund a card payment from the back-office screen" in page.text
    assert "sha256:" in page.text


def test_unknown_checklist_is_a_friendly_404(app: Flask, reviewer: FlaskClient) -> None:
    page = reviewer.get("/checklists/nope/1")
    assert page.status_code == 404
    assert "Not found" in page.text
    assert "no checklist version 1 of &#39;nope&#39;" in page.text
    assert reviewer.get("/checklists/nope").status_code == 404
    assert reviewer.get("/checklists/nope/diff").status_code == 404


def _two_versions(runner: FlaskCliRunner, tmp_path: Path) -> None:
    directory = tmp_path / "checklists"
    directory.mkdir()
    shutil.copy(SAMPLES / "payments-api.yaml", directory)
    assert (
        runner.invoke(
            cli, ["checklists", "sync", str(directory), "--author", CHECKLIST_AUTHOR]
        ).exit_code
        == 0
    )
    path = directory / "payments-api.yaml"
    text = path.read_text()
    text = text.replace("version: 7", "version: 8")
    text = text.replace(
        "Dependency scan shows no unresolved critical findings",
        "Dependency scan shows no unresolved critical or high findings",
    )
    text = text.replace("      role: Customer refunds desk\n", "      role: Refunds team lead\n")
    text = text.replace(
        "    - Search a payment by its card's last four digits and open its history\n",
        "    - Export yesterday's refunds as CSV\n",
    )
    path.write_text(text)
    result = runner.invoke(
        cli, ["checklists", "sync", str(directory), "--author", CHECKLIST_AUTHOR]
    )
    assert result.exit_code == 0, result.output


def test_a_diff_between_two_versions(
    app: Flask, runner: FlaskCliRunner, reviewer: FlaskClient, tmp_path: Path
) -> None:
    _two_versions(runner, tmp_path)
    application = reviewer.get("/checklists/payments-api")
    assert application.status_code == 200
    assert 'data-version="8"' in application.text
    assert 'data-testid="diff-form"' in application.text
    page = reviewer.get("/checklists/payments-api/diff?from=7&to=8")
    assert page.status_code == 200
    text = page.text
    assert 'data-change="reworded" data-item="dependency-scan"' in text
    assert "Dependency scan shows no unresolved critical or high findings" in text
    assert 'data-testid="diff-key-user" data-change="changed"' in text
    assert "Refunds team lead" in text
    assert "Export yesterday&#39;s refunds as CSV" in text
    assert 'data-testid="diff-scenario" data-change="removed"' in text
    # The default compares the newest version with the one before it; any order works.
    assert reviewer.get("/checklists/payments-api/diff").text.count("data-testid=") == text.count(
        "data-testid="
    )
    backwards = reviewer.get("/checklists/payments-api/diff?from=8&to=7")
    assert "v8 → v7" in backwards.text
    same = reviewer.get("/checklists/payments-api/diff?from=7&to=7")
    assert 'data-testid="diff-unchanged"' in same.text
    assert reviewer.get("/checklists/payments-api/diff?from=7&to=99").status_code == 404


def test_admins_see_dead_letters_and_can_queue_them_again(app: Flask, clock: FixedClock) -> None:
    add_user(clock, ADMIN, users.ADMIN)
    with unit_of_work(db.session) as session:
        message_id = dead_letter(
            session,
            clock,
            subject="Sign-off needed: November",
            attempts=3,
            last_error="SMTP 550: <mailbox unavailable>",
        ).id
    admin = sign_in(app, ADMIN)
    page = admin.get("/outbox/")
    assert page.status_code == 200
    assert f'data-testid="dead-letter" data-id="{message_id}"' in page.text
    assert "SMTP 550: &lt;mailbox unavailable&gt;" in page.text
    assert "bounced@example.com" in page.text
    assert post(admin, f"/outbox/{message_id}/retry").status_code == 302
    page = admin.get("/outbox/")
    assert 'data-testid="no-dead-letters"' in page.text
    assert "is queued again" in page.text
    assert post(admin, f"/outbox/{message_id}/retry").status_code == 404


def test_healthz(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_unknown_api_path_gets_the_json_error_envelope(app: Flask) -> None:
    response = app.test_client().get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["error"]["code"] == "not_found"

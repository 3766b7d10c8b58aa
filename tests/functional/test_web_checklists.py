"""The read-only checklist pages and the health endpoint over HTTP."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from tests.conftest import SAMPLES


def test_catalogue_lists_synced_checklists(app: Flask, runner: FlaskCliRunner) -> None:
    client = app.test_client()
    empty = client.get("/")
    assert empty.status_code == 200
    assert "No checklists yet" in empty.text
    runner.invoke(cli, ["checklists", "sync", str(SAMPLES)])
    page = client.get("/checklists")
    assert page.status_code == 200
    assert "Payments API" in page.text
    assert "pending review" in page.text


def test_checklist_page_shows_items_key_users_and_digest(
    app: Flask, runner: FlaskCliRunner
) -> None:
    runner.invoke(cli, ["checklists", "sync", str(SAMPLES)])
    page = app.test_client().get("/checklists/payments-api/7")
    assert page.status_code == 200
    assert "Release artifacts were built by CI" in page.text
    assert "Dana Ortiz" in page.text
    assert "Refund a card payment from the back-office screen" in page.text
    assert "sha256:" in page.text


def test_unknown_checklist_is_a_friendly_404(app: Flask) -> None:
    page = app.test_client().get("/checklists/nope/1")
    assert page.status_code == 404
    assert "Not found" in page.text
    assert "no checklist version 1 of &#39;nope&#39;" in page.text


def test_healthz(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_unknown_api_path_gets_the_json_error_envelope(app: Flask) -> None:
    response = app.test_client().get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["error"]["code"] == "not_found"

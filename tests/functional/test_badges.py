"""Gate badges: SVG behind a signed URL; a wrong signature reveals nothing."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.services.demo import DEMO_PACKAGE


def test_badge_url_serves_the_gate_status_and_wrong_signatures_404(
    app: Flask, runner: FlaskCliRunner
) -> None:
    assert runner.invoke(cli, ["demo", "--no-serve"]).exit_code == 0
    result = runner.invoke(cli, ["gate", "badge-url", DEMO_PACKAGE])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:5000/badges/2026.11-demo/")
    path = url.removeprefix("http://127.0.0.1:5000")
    client = app.test_client()
    badge = client.get(path)
    assert badge.status_code == 200
    assert badge.mimetype == "image/svg+xml"
    assert "gate: pending" in badge.text
    assert client.get(path.replace(DEMO_PACKAGE, "2026.11-other")).status_code == 404
    assert client.get(path[:-6] + "AAAA.svg").status_code == 404


def test_badge_url_for_unknown_package_fails(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(cli, ["gate", "badge-url", "nope"])
    assert result.exit_code == 1
    assert "no package 'nope'" in result.stderr

"""`gatekeeper demo` shows governance at work: a pending version and an open finding."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import findings, governance
from gatekeeper.services.demo_governance import GENERATED
from tests.conftest import SAMPLES


def demo(runner: FlaskCliRunner) -> str:
    result = runner.invoke(cli, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_demo_has_a_pending_version_and_an_open_finding(
    app: Flask, runner: FlaskCliRunner, clock: FixedClock
) -> None:
    out = demo(runner)
    assert "package 2026.10-demo: released" in out
    assert "finding F-1 on payments-api: reported after 2026.10-demo, open" in out
    assert "checklist payments-api v8: pending review (addresses F-1)" in out
    generated = Path(app.instance_path) / GENERATED / "payments-api.yaml"
    assert "addresses: [F-1]" in generated.read_text(encoding="utf-8")
    assert "version: 7" in (SAMPLES / "payments-api.yaml").read_text(encoding="utf-8"), (
        "the samples stay as they are"
    )
    rows = {
        r.application: r
        for r in governance.dashboard(db.session, now=clock.now(), lead=timedelta(days=14))
    }
    assert (rows["payments-api"].approved_version, rows["payments-api"].pending_versions) == (
        7,
        (8,),
    )
    assert rows["payments-api"].open_findings == 1
    (finding,) = findings.list_findings(db.session, states=("open",))
    assert finding.reported_by == "refunds-desk@example.com"
    again = demo(runner)
    assert "checklist payments-api v8: unchanged" in again
    assert "finding" not in again


def test_a_version_generated_for_another_database_is_left_out(
    app: Flask, runner: FlaskCliRunner
) -> None:
    stale = Path(app.instance_path) / GENERATED / "payments-api.yaml"
    stale.parent.mkdir(parents=True)
    text = (SAMPLES / "payments-api.yaml").read_text(encoding="utf-8")
    stale.write_text(text.replace("version: 7", "version: 12", 1), encoding="utf-8")
    out = demo(runner)
    assert "checklist payments-api v7: created" in out
    assert "checklist payments-api v8: pending review (addresses F-1)" in out

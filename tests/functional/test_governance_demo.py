"""`gatekeeper demo` shows governance at work: a pending version and an open finding."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.domain import learning
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import demo_escapes, escapes, findings, governance, learning_reviews
from gatekeeper.services.demo_governance import APPLICATION, GENERATED, write_version


def demo(runner: FlaskCliRunner) -> str:
    result = runner.invoke(cli, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_demo_has_a_pending_version_and_an_open_finding(
    app: Flask, runner: FlaskCliRunner, clock: FixedClock
) -> None:
    out = demo(runner)
    assert f"checklist {APPLICATION} v1: approved by release-board@example.com" in out
    assert "package 2026.10-demo: released" in out
    assert f"finding F-1 on {APPLICATION}: reported after 2026.10-demo, open" in out
    assert f"checklist {APPLICATION} v2: pending review (addresses F-1)" in out
    generated = Path(app.instance_path) / GENERATED / f"{APPLICATION}.yaml"
    assert "addresses: [F-1]" in generated.read_text(encoding="utf-8")
    rows = {
        r.application: r
        for r in governance.dashboard(db.session, now=clock.now(), lead=timedelta(days=14))
    }
    story = rows[APPLICATION]
    assert (story.approved_version, story.pending_versions, story.open_findings) == (1, (2,), 1)
    assert (rows["payments-api"].approved_version, rows["payments-api"].pending_versions) == (
        7,
        (),
    ), "no sample gets a version from the demo"
    (finding,) = findings.list_findings(db.session, states=("open",))
    assert finding.reported_by == "refunds-desk@example.com"
    again = demo(runner)
    assert "finding" not in again, "nothing new the second time, in either story"
    assert APPLICATION not in again


def test_an_application_of_that_name_synced_before_the_demo_is_left_alone(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    own = write_version(tmp_path, 1).parent
    assert (
        runner.invoke(
            cli, ["checklists", "sync", str(own), "--author", "ops@example.com"]
        ).exit_code
        == 0
    )
    out = demo(runner)
    assert f"governance story skipped: {APPLICATION} exists without 2026.10-demo" in out
    assert f"on {APPLICATION}" not in out, "no finding of its story"
    assert "package 2026.11-demo: submitted" in out, "the rest of the demo is there"


def test_the_demo_shows_an_item_that_never_fires(app: Flask, runner: FlaskCliRunner) -> None:
    out = demo(runner)
    assert "escape story: 20 weekly releases of ledger-export" in out
    stats = {
        s.ref: s
        for s in escapes.item_stats(db.session, window=20)
        if s.application == demo_escapes.APPLICATION
    }
    never, checked = stats["build.artifacts-from-ci"], stats["checks.totals-match"]
    assert (never.evaluated, never.failed, never.never_fires) == (20, 0, True)
    assert (checked.not_applicable, checked.escaped) == (13, 1)
    assert [g.application for g in escapes.gaps(db.session)] == [demo_escapes.APPLICATION]


def test_the_demo_shows_a_learning_review_whose_checklist_change_a_version_finished(
    app: Flask, runner: FlaskCliRunner
) -> None:
    out = demo(runner)
    assert "learning review LR-1: " in out
    assert "ledger-export v2 approved: it addresses" in out
    assert out.rstrip().count("so its checklist change is done") == 1
    review = learning_reviews.get_review(db.session, 1)
    assert review.state == learning.COMPLETED
    assert review.package.key == f"ledger-{demo_escapes.RELEASES:02d}"
    change, process = review.action_items
    assert (change.kind, change.state) == (learning.CHECKLIST_CHANGE, learning.DONE)
    assert (process.kind, process.state) == ("process", learning.OPEN)
    assert "learning review" not in demo(runner), "nothing new the second time"

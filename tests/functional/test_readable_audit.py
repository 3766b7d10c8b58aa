"""The audit trail as people read it: the package timeline names every kind of event in words,
and the evidence pack's HTML is written for auditors while still carrying its JSON."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from flask import Flask, render_template
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import findings, packages
from gatekeeper.services.audit import Timeline
from gatekeeper.services.labels import action_label
from tests.conftest import SAMPLES, START
from tests.functional.api_helpers import sync_and_approve
from tests.functional.web_helpers import words
from tests.support.audit_actions import audit_actions
from tests.support.governance import BOARD, MANAGER, release, sign_everything, submit
from tests.support.pages import PROBLEM


def event(seq: int, action: str) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        occurred_at=START,
        actor="someone@example.com",
        action=action,
        subject="what it was about",
        package="2026.11-r3",
        revision=1,
        details="{}",
        prev_hash="0" * 64,
        hash=f"{seq:064x}",
    )


def test_the_timeline_names_every_kind_of_event_the_code_writes(app: Flask) -> None:
    actions = sorted(audit_actions())
    events = tuple(event(seq, action) for seq, action in enumerate(actions, start=1))
    with app.test_request_context():
        page = render_template("packages/_timeline.html", timeline=Timeline(events, len(events)))
    for action in actions:
        row = page.split(f'data-action="{action}"')[1].split("</tr>")[0]
        assert f"<strong>{action_label(action)}</strong>" in row, action
        assert f">{action}<" not in row, f"{action} is shown raw"


KEY = "2026.11-evidence"
ITEM_TEXT = "Release artifacts were built by CI from a tagged commit"
SCENARIO = "Run the end-of-day settlement report"
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def released_after_a_change(app: Flask, clock: FixedClock) -> None:
    """Two applications signed, one of them changed (revision 2), re-signed, released, and a
    problem reported and accepted after the release."""
    sync_and_approve(SAMPLES, clock)
    submit(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    clock.advance(timedelta(hours=1))
    sign_everything(clock, KEY)
    clock.advance(timedelta(hours=1))
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                applications=(
                    packages.ApplicationSpec("payments-api", "7.4.1", "Hotfix"),
                    packages.ApplicationSpec("storefront-web", "2026.11.2", ""),
                )
            ),
            actor=MANAGER,
            clock=clock,
        )
    sign_everything(clock, KEY)
    release(app, clock, KEY)
    with unit_of_work(db.session) as session:
        filed = findings.record_report(
            session,
            package=packages.get_package(session, KEY),
            application="payments-api",
            reporter="refunds-desk@example.com",
            report=PROBLEM,
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
        findings.triage(session, filed.id, classification="uncovered", actor=BOARD, clock=clock)


def test_the_evidence_pack_reads_as_a_report_and_still_verifies(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    released_after_a_change(app, clock)
    target = tmp_path / "evidence.html"
    result = runner.invoke(cli, ["audit", "export", KEY, "--format", "html", "-o", str(target)])
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    shown = html.split('<script type="application/json"')[0]
    text = words(shown)
    # Revisions say what changed and what carried forward, in sentences.
    assert "payments-api: version 7.4.0 → 7.4.1" in shown
    pack = json.loads(html.split('id="gatekeeper-evidence">')[1].split("</script>")[0])
    carried = [d for d in pack["decisions"] if d["application"] == "storefront-web"]
    assert f"storefront-web unchanged: {len(carried)} sign-off(s) carried forward" in shown
    assert '{"changed"' not in shown
    assert "carried_forward" not in shown
    # Times are for people; machines read the embedded JSON.
    assert not ISO_TIME.search(text), ISO_TIME.search(text)
    assert "2026-11-23 10:00 UTC" in shown
    # Decisions name the item and the scenarios, not their ids.
    assert ITEM_TEXT in shown
    assert SCENARIO in shown
    # The gate at release, the findings and the audit events, without JSON or codes.
    assert '"blockers"' not in shown
    assert '"what_happened"' not in shown
    assert PROBLEM.what_happened in shown
    assert "Finding accepted" in shown
    assert ">finding.accepted<" not in shown
    assert ">signoff.recorded<" not in shown
    # The machine-readable pack rides along, intact.
    checked = runner.invoke(cli, ["audit", "verify-export", str(target)])
    assert checked.exit_code == 0, checked.output

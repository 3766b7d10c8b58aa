"""The audit trail as people read it: the package timeline names every kind of event in words,
and the evidence pack's HTML is written for auditors while still carrying its JSON."""

from __future__ import annotations

from flask import Flask, render_template

from gatekeeper.db.models import AuditEvent
from gatekeeper.services.audit import Timeline
from gatekeeper.services.audit_labels import label
from tests.conftest import START
from tests.support.audit_actions import audit_actions


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
        assert f"<strong>{label(action)}</strong>" in row, action
        assert f">{action}<" not in row, f"{action} is shown raw"

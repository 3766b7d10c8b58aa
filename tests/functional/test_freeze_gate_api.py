"""What CI reads during a freeze: the gate API's FREEZE_WINDOW blocker and FREEZE_AHEAD warning,
as the OpenAPI document describes them, and `gate check` exiting 1."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask

from gatekeeper.cli import cli
from gatekeeper.domain.clock import FixedClock
from tests.functional.api_helpers import (
    API_PREFIX,
    Api,
    create_token,
    schema_validate,
    sync_and_approve,
)
from tests.integration.test_freezes import review, write_calendar
from tests.support.governance import checklist_dir

KEY = "2026.11-frozen"


def test_ci_reads_the_freeze_and_when_it_ends(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock, after=-timedelta(hours=1), lasting=timedelta(days=2))
    sync_and_approve(directory, clock)
    review(clock, 1)
    api = Api(app, create_token(clock, "ci-all"))
    body = {
        "key": KEY,
        "title": "Frozen",
        "environment": "production",
        "planned_for": (clock.now() + timedelta(days=1)).date().isoformat(),
        "applications": [{"application": "payments-api", "version": "7.4.0"}],
    }
    assert api.post(f"{API_PREFIX}/packages", json=body).status_code == 201
    gate = api.get(f"{API_PREFIX}/packages/{KEY}/gate").json
    assert gate is not None
    schema_validate(api.doc, "Gate", gate)
    assert gate["status"] == "blocked"
    frozen = [b for b in gate["blockers"] if b["code"] == "FREEZE_WINDOW"]
    assert [b["freeze"]["id"] for b in frozen] == ["change-freeze"]
    ends = clock.now() - timedelta(hours=1) + timedelta(days=2)
    assert frozen[0]["freeze"]["ends"] == ends.isoformat()
    assert [w["code"] for w in gate["warnings"]] == ["FREEZE_AHEAD"]
    result = app.test_cli_runner().invoke(cli, ["gate", "check", KEY])
    assert result.exit_code == 1, result.output
    assert "FREEZE_WINDOW" in result.output

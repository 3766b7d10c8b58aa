"""The freeze calendar synced, reviewed and applied by the gate, and blackouts of checklists:
the gate cache never serves an answer across a window's boundary (to the microsecond)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, PermissionDenied, ValidationFailed
from gatekeeper.services import freezes, packages, plans
from gatekeeper.services.packages import ApplicationSpec
from tests.conftest import CHECKLIST_AUTHOR
from tests.integration.test_gate_cache import KEY, counters, poll
from tests.support.governance import (
    BOARD,
    MANAGER,
    approve,
    checklist_dir,
    gate,
    sign_everything,
    submit,
    sync,
)

TICK = timedelta(microseconds=1)
CALENDAR = """\
schema: 1
kind: freezes
version: {version}
governance:
  reviewers: [{reviewer}]
freezes:
  - id: change-freeze
    title: Change freeze
    reason: {reason}
    starts: "{starts}"
    ends: "{ends}"
    applies_to:
      environments: [production]
"""


def write_calendar(
    directory: Path,
    clock: FixedClock,
    *,
    version: int = 1,
    after: timedelta = timedelta(hours=1),
    lasting: timedelta = timedelta(hours=2),
    reason: str = "Peak trading",
    reviewer: str = BOARD,
) -> Path:
    starts = clock.now() + after
    path = directory / "freezes.yaml"
    path.write_text(
        CALENDAR.format(
            version=version,
            reviewer=reviewer,
            reason=reason,
            starts=starts.isoformat(),
            ends=(starts + lasting).isoformat(),
        ),
        encoding="utf-8",
    )
    return path


def review(clock: FixedClock, version: int, reviewer: str = BOARD, action: str = "approve") -> str:
    with unit_of_work(db.session) as session:
        return freezes.review_calendar(
            session, version=version, action=action, reviewer=reviewer, notes="ok", clock=clock
        ).state


def prepared(app: Flask, clock: FixedClock, tmp_path: Path) -> Path:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, KEY, {"payments-api": "7.4.0"})
    sign_everything(clock, KEY)
    return directory


def test_the_calendar_syncs_beside_the_checklists_and_waits_for_approval(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    (stored,) = freezes.versions(db.session)
    assert (stored.version, stored.state, stored.author) == (1, "pending_review", CHECKLIST_AUTHOR)
    clock.advance(timedelta(hours=1))
    assert poll(app).status == gate_rules.OPEN, "a calendar nobody approved is not applied"
    assert review(clock, 1) == "approved"
    blocked = poll(app)
    assert blocked.status == gate_rules.BLOCKED
    (blocker,) = blocked.blockers
    assert blocker.code == gate_rules.FREEZE_WINDOW
    assert "Peak trading" in blocker.message
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions[-1] == "freezes.approved"
    assert "freezes.synced" in actions


def test_the_cache_never_serves_an_answer_across_a_boundary(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    review(clock, 1)
    starts = clock.now() + timedelta(hours=1)
    ends = starts + timedelta(hours=2)
    assert poll(app).status == gate_rules.OPEN
    clock.set(starts - TICK)
    hits, misses = counters(app)
    assert poll(app).status == gate_rules.OPEN
    assert counters(app) == (hits + 1, misses), "still stable one microsecond before"
    clock.set(starts)
    assert [b.code for b in poll(app).blockers] == [gate_rules.FREEZE_WINDOW]
    clock.set(ends - TICK)
    assert poll(app).status == gate_rules.BLOCKED
    clock.set(ends)
    assert poll(app).status == gate_rules.OPEN


def test_the_gate_uses_the_latest_approved_version(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = prepared(app, clock, tmp_path)
    review(clock, 1)
    write_calendar(directory, clock, version=2, after=timedelta(0), reason="Moved earlier")
    sync(app, clock, directory)
    assert poll(app).status == gate_rules.OPEN, "version 2 is only pending"
    review(clock, 2)
    (blocker,) = poll(app).blockers
    assert "Moved earlier" in blocker.message


def test_versions_only_go_up_and_never_change(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = prepared(app, clock, tmp_path)
    assert sync(app, clock, directory) == [], "the same file again is a no-op"
    write_calendar(directory, clock, reason="Changed without a bump")
    with pytest.raises(Conflict, match="bump `version` to 2"):
        sync(app, clock, directory)
    db.session.rollback()
    write_calendar(directory, clock, version=3)
    assert sync(app, clock, directory) == ["freeze calendar v3"]
    write_calendar(directory, clock, version=2)
    with pytest.raises(Conflict, match="lower than the stored version 3"):
        sync(app, clock, directory)
    db.session.rollback()
    states = {v.version: v.state for v in freezes.versions(db.session)}
    assert states == {1: "superseded", 3: "pending_review"}


def test_a_second_calendar_file_and_a_broken_one_are_refused(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock)
    (directory / "more-freezes.yaml").write_text((directory / "freezes.yaml").read_text())
    with pytest.raises(Conflict, match="keep one freeze calendar"):
        sync(app, clock, directory)
    db.session.rollback()
    (directory / "more-freezes.yaml").unlink()
    broken = (directory / "freezes.yaml").read_text().replace("starts:", "begins:")
    (directory / "freezes.yaml").write_text(broken)
    with pytest.raises(ChecklistInvalid):
        sync(app, clock, directory)


def test_only_a_named_reviewer_who_did_not_write_it_approves(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock, reviewer=CHECKLIST_AUTHOR)
    sync(app, clock, directory)
    with pytest.raises(PermissionDenied, match="author"):
        review(clock, 1, reviewer=CHECKLIST_AUTHOR)
    db.session.rollback()
    with pytest.raises(PermissionDenied, match="not a reviewer"):
        review(clock, 1, reviewer=BOARD)
    db.session.rollback()
    with pytest.raises(ValidationFailed, match="unknown review action"):
        review(clock, 1, reviewer=BOARD, action="reaffirm")
    db.session.rollback()
    with pytest.raises(Exception, match="no freeze calendar version 9"):
        review(clock, 9)


def test_changes_requested_leave_the_version_unused(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    with unit_of_work(db.session) as session, pytest.raises(ValidationFailed, match="notes"):
        freezes.review_calendar(
            session, version=1, action="request_changes", reviewer=BOARD, clock=clock
        )
    db.session.rollback()
    assert review(clock, 1, action="request_changes") == "changes_requested"
    clock.advance(timedelta(hours=1))
    assert poll(app).status == gate_rules.OPEN


def test_a_planned_date_in_a_window_warns_at_once_and_in_the_plan(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock, after=timedelta(days=2), lasting=timedelta(days=1))
    sync(app, clock, directory)
    review(clock, 1)
    approve(clock, "payments-api", 7)
    planned = (clock.now() + timedelta(days=2, hours=1)).date()
    specs = (ApplicationSpec("payments-api", "7.4.0", ""),)
    plan = plans.plan_for(
        db.session,
        specs,
        assembler=MANAGER,
        environment="production",
        planned_for=planned,
        clock=clock,
    )
    assert any("falls in freeze window 'change-freeze'" in p for p in plan.problems)
    elsewhere = plans.plan_for(
        db.session,
        specs,
        assembler=MANAGER,
        environment="staging",
        planned_for=planned,
        clock=clock,
    )
    assert not any("freeze" in p for p in elsewhere.problems)
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(KEY, "Release", "production", planned, specs),
            assembler=MANAGER,
            clock=clock,
        )
    (warning,) = poll(app).warnings
    assert warning.code == gate_rules.FREEZE_AHEAD


def test_a_blackout_holds_back_its_application_only(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    from gatekeeper.services import demo_freezes

    directory = checklist_dir(tmp_path)
    (directory / "general-ledger.yaml").write_text(demo_freezes.CHECKLIST, encoding="utf-8")
    sync(app, clock, directory)
    approve(clock, "general-ledger", 1)
    approve(clock, "payments-api", 7)
    close = demo_freezes.next_close(clock.now())
    submit(clock, KEY, {"general-ledger": "12.0.0"})
    submit(clock, "other", {"payments-api": "7.4.0"})
    sign_everything(clock, KEY)
    sign_everything(clock, "other")
    assert poll(app).status == gate_rules.OPEN
    clock.set(close)
    (blocker,) = poll(app).blockers
    assert (blocker.code, blocker.application) == (gate_rules.FREEZE_WINDOW, "general-ledger")
    assert "Finance closes the books" in blocker.message
    assert gate(app, clock, "other").status == gate_rules.OPEN

"""The audit trail on real databases: append-only, hash-chained, tamper found, evidence exported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import Origin, unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit, evidence
from tests.support.flows import KEY, decisions_for, prepare, race, submit


def append(clock: FixedClock, n: int, origin: Origin | None = None) -> None:
    for index in range(n):
        with unit_of_work(db.session, origin=origin) as session:
            audit.record(
                session,
                action="test.event",
                actor="tester",
                subject=f"event {index}",
                now=clock.now(),
                details={"index": index},
            )


def verify() -> tuple[bool, int | None]:
    report = audit.verify(db.session)
    db.session.rollback()
    return report.ok, report.first_bad_seq


@contextmanager
def raw_access() -> Iterator[sa.Connection]:
    """A connection that bypasses the append-only guard, as someone with the database's keys."""
    engine = db.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        yield connection


def test_every_state_change_of_the_workflow_is_recorded_and_chained(
    app: Flask, clock: FixedClock
) -> None:
    tokens = prepare(app, clock)
    submit(
        app, tokens["raj@example.com"], decisions_for(app, tokens["raj@example.com"], clock), clock
    )
    actions = [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq))]
    for expected in (
        "checklist.synced",
        "checklist.approved",
        "package.created",
        "package.submitted",
        "signoff.requested",
        "link.issued",
        "signoff.recorded",
    ):
        assert expected in actions, expected
    recorded = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "signoff.recorded")
    ).all()
    assert {e.actor for e in recorded} == {"raj@example.com"}
    assert {e.package for e in recorded} == {KEY}
    assert verify() == (True, None)


def test_the_origin_of_a_change_is_recorded(app: Flask, clock: FixedClock) -> None:
    append(clock, 1, Origin(client_address="203.0.113.7", user_agent="Mozilla/5.0 test"))
    event = db.session.scalar(sa.select(AuditEvent))
    assert event is not None
    assert (event.client_address, event.user_agent) == ("203.0.113.7", "Mozilla/5.0 test")


def test_update_and_delete_are_refused_by_the_database(app: Flask, clock: FixedClock) -> None:
    append(clock, 2)
    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 2


def test_truncate_is_refused_on_postgresql(app: Flask, clock: FixedClock) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE is covered above")
    append(clock, 1)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE audit_events")


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE audit_events SET subject = 'edited' WHERE seq = 3", 3),
        ("DELETE FROM audit_events WHERE seq = 4", 4),
        (
            "UPDATE audit_events SET seq = CASE seq WHEN 2 THEN 1002 WHEN 3 THEN 1003 END "
            "WHERE seq IN (2, 3); UPDATE audit_events SET seq = seq - 1000 + "
            "CASE seq WHEN 1002 THEN 1 ELSE -1 END WHERE seq > 1000",
            2,
        ),
    ],
    ids=["edited", "deleted", "swapped"],
)
def test_tampering_by_direct_sql_is_found_at_the_right_event(
    app: Flask, clock: FixedClock, tamper: str, first_bad: int
) -> None:
    append(clock, 6)
    assert verify() == (True, None)
    with raw_access() as connection:
        for statement in tamper.split("; "):
            connection.exec_driver_sql(statement)
    assert verify() == (False, first_bad)


def test_truncating_the_tail_is_found_with_the_head_kept_outside(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner
) -> None:
    append(clock, 5)
    anchor = audit.head(db.session)
    db.session.rollback()
    with raw_access() as connection:
        connection.exec_driver_sql("DELETE FROM audit_events WHERE seq >= 4")
    assert verify() == (True, None), "without an anchor a clean cut looks intact"
    result = runner.invoke(cli, ["audit", "verify", "--expect-head", anchor])
    assert result.exit_code == 1
    assert "broken at event 4" in result.stderr


def test_a_failed_transaction_leaves_no_audit_event(app: Flask, clock: FixedClock) -> None:
    with pytest.raises(RuntimeError), unit_of_work(db.session) as session:
        audit.record(session, action="x", actor="y", subject="z", now=clock.now())
        raise RuntimeError("the change failed")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_concurrent_appends_never_fork_the_chain(app: Flask, clock: FixedClock) -> None:
    def job() -> None:
        append(clock, 5)

    assert race(app, [job] * 8) == [None] * 8
    seqs = db.session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, 41))
    assert verify() == (True, None)


def test_cli_verify_reports_intact_and_json(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner
) -> None:
    append(clock, 3)
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 0
    assert "audit chain intact: 3 events" in result.stdout
    report = json.loads(runner.invoke(cli, ["audit", "verify", "--json"]).stdout)
    assert report["ok"] is True
    assert report["events"] == 3


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_evidence_pack_round_trips_through_verify_export(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path, fmt: str
) -> None:
    tokens = prepare(app, clock)
    signer = "raj@example.com"
    submit(app, tokens[signer], decisions_for(app, tokens[signer], clock), clock)
    target = tmp_path / f"evidence.{fmt}"
    result = runner.invoke(cli, ["audit", "export", KEY, "--format", fmt, "--output", str(target)])
    assert result.exit_code == 0, result.output
    checked = runner.invoke(cli, ["audit", "verify-export", str(target)])
    assert checked.exit_code == 0, checked.output
    assert "evidence pack intact" in checked.stdout
    text = target.read_text()
    if fmt == "html":
        assert "Release evidence · 2026.11-race" in text
        assert '<script type="application/json" id="gatekeeper-evidence">' in text
    pack = evidence.build(db.session, KEY, now=clock.now())
    assert {d["signer"] for d in pack["decisions"]} == {signer}
    assert pack["applications"][0]["checklist"]["sha256"]
    assert pack["applications"][0]["checklist"]["source_yaml"].startswith("#")
    assert any(e["action"] == "signoff.recorded" for e in pack["audit_events"])
    forged = text.replace(signer, "mallory@example.com")
    target.write_text(forged)
    tampered = runner.invoke(cli, ["audit", "verify-export", str(target)])
    assert tampered.exit_code == 1
    assert "does not match" in tampered.stderr


def test_verify_export_refuses_garbage(runner: FlaskCliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    result = runner.invoke(cli, ["audit", "verify-export", str(junk)])
    assert result.exit_code == 1
    assert "not a readable evidence pack" in result.stderr

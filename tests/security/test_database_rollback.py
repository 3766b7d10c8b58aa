"""A database put back to an older state cannot reopen a gate: every row in it was genuine then,
so MACs and seals verify, but the audit chain no longer continues from the head this host
witnessed (services/head_witness.py), and every gate says so until an operator accepts it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit, head_cache, head_witness, packages
from gatekeeper.settings import WITNESS_FILE_NAME, SettingsError
from tests.conftest import dispose, make_app
from tests.functional.api_helpers import create_token
from tests.security.test_record_tampering import KEY, prepared
from tests.support.governance import MANAGER, gate, sign_everything
from tests.support.mail import run_worker
from tests.support.snapshot import Snapshot

GATE = f"/api/v1/packages/{KEY}/gate"


def chain_breaks(result: gate_rules.GateResult) -> list[str]:
    return [
        b.message
        for b in result.blockers
        if b.code == gate_rules.TAMPERING_DETECTED and "audit chain" in b.message
    ]


def open_then_cancelled(
    app: Flask, clock: FixedClock, tmp_path: Path, status: Callable[[], str] | None = None
) -> Snapshot:
    """A release signed in full (the backup is taken then), then cancelled by its manager;
    `status` reads the gate (a read: the host witnesses the head it sees)."""
    status = status or (lambda: gate(app, clock, KEY).status)
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    assert status() == gate_rules.OPEN
    backup = Snapshot.take(db.engine)
    with unit_of_work(db.session) as session:
        packages.cancel_package(session, KEY, actor=MANAGER, clock=clock)
    assert status() != gate_rules.OPEN
    return backup


def viewed(session: Session, subject: str, clock: FixedClock) -> None:
    """Any audited event: moves the head."""
    audit.record(
        session, action="package.viewed", actor="x@example.com", subject=subject, now=clock.now()
    )


def head() -> tuple[int, str]:
    try:
        return audit.latest(db.session)
    finally:
        db.session.rollback()


def test_the_rows_of_an_old_backup_alone_would_reopen_the_gate(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """The control: restored as an operator restores (witness moved), the genuine rows of the
    backup open the cancelled release's gate. That is what the witness has to stop."""
    backup = open_then_cancelled(app, clock, tmp_path)
    backup.restore(witnessed=True)
    assert gate(app, clock, KEY).status == gate_rules.OPEN


def test_a_restored_backup_keeps_every_gate_shut_and_names_the_break(
    app: Flask, clock: FixedClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {create_token(clock, 'ci')}"}
    polls: list[TestResponse] = []

    def poll() -> str:
        polls.append(client.get(GATE, headers=auth))
        return str(polls[-1].get_json()["status"])

    backup = open_then_cancelled(app, clock, tmp_path, poll)
    polled = polls[0]
    witnessed = head()

    # The answer cached for the backup's head is exactly what the attacker wants served again.
    backup.restore(witnessed=False)
    at_backup = head()
    assert at_backup[0] < witnessed[0]
    with caplog.at_level(logging.CRITICAL, logger="gatekeeper.services.head_witness"):
        fresh = gate(app, clock, KEY)
        answered = client.get(GATE, headers=auth)
        again = client.get(GATE, headers={**auth, "If-None-Match": polled.headers["ETag"]})
    assert fresh.status == gate_rules.BLOCKED
    expected = f"went back from event {witnessed[0]} to event {at_backup[0]}"
    assert [expected in m for m in chain_breaks(fresh)] == [True]
    assert answered.status_code == 200
    body = answered.get_json()
    assert body["status"] == gate_rules.BLOCKED
    assert any(expected in b["message"] for b in body["blockers"])
    assert again.status_code == 200, "no 304 for the copy of the open gate"
    assert again.get_json()["status"] == gate_rules.BLOCKED
    # One critical line per head seen, however often it is polled.
    lines = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(lines) == 1
    assert expected in lines[0].getMessage()


def test_a_restart_still_remembers_the_newer_head(
    app: Flask, clock: FixedClock, tmp_path: Path, database_url: str
) -> None:
    """The witness is kept in the instance folder: a process started after the restore knows."""
    backup = open_then_cancelled(app, clock, tmp_path)
    backup.restore(witnessed=False)
    dispose(app)
    restarted = make_app(database_url, tmp_path / "instance", clock)
    with restarted.app_context():
        assert chain_breaks(gate(restarted, clock, KEY))
    dispose(restarted)


def test_appending_past_the_witnessed_head_does_not_hide_the_restore(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """Events written on top of the old chain (by Gatekeeper or by SQL) make it longer again,
    but the event at the witnessed sequence number is not the one the host saw."""
    backup = open_then_cancelled(app, clock, tmp_path)
    witnessed = head()
    backup.restore(witnessed=False)
    with unit_of_work(db.session) as session:
        while audit.latest(session)[0] <= witnessed[0]:
            viewed(session, KEY, clock)
    assert head()[0] > witnessed[0]
    found = chain_breaks(gate(app, clock, KEY))
    assert found
    assert f"holds another event {witnessed[0]}" in found[0]


def test_accept_restore_is_audited_and_lets_gates_evaluate_again(
    app: Flask, clock: FixedClock, tmp_path: Path, runner: FlaskCliRunner
) -> None:
    backup = open_then_cancelled(app, clock, tmp_path)
    witnessed = head()
    backup.restore(witnessed=False)
    restored = head()
    assert chain_breaks(gate(app, clock, KEY))
    # Every link of the restored chain verifies; verify still says it is not the whole chain.
    verified = runner.invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 1
    assert f"audit chain went back from event {witnessed[0]} to event {restored[0]}" in (
        verified.output
    )
    as_json = json.loads(runner.invoke(cli, ["audit", "verify", "--json"]).output)
    assert (as_json["ok"], as_json["first_bad_seq"]) == (False, None)
    assert as_json["witness"].startswith("went back from event")
    result = runner.invoke(cli, ["audit", "accept-restore", "--actor", "ops@example.com"])
    assert result.exit_code == 0, result.output
    assert f"went back from event {witnessed[0]} to event {restored[0]}" in result.output
    assert not chain_breaks(after := gate(app, clock, KEY))
    # What the operator restored is now the history: here, the backup's open gate.
    assert after.status == gate_rules.OPEN
    event = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "audit.restore_accepted")
    )
    assert event is not None
    assert event.actor == "ops@example.com"
    details = json.loads(event.details)
    assert details["witnessed"] == {"seq": witnessed[0], "hash": witnessed[1]}
    assert details["found"] == {"seq": restored[0], "hash": restored[1]}
    db.session.rollback()
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    nothing = runner.invoke(cli, ["audit", "accept-restore", "--actor", "ops@example.com"])
    assert nothing.exit_code == 0
    assert "nothing to accept" in nothing.output


def test_each_worker_pass_writes_the_head_down_for_this_host(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """Nobody polls: the worker's pass alone keeps the witness file current."""
    witness_file = Path(app.instance_path) / WITNESS_FILE_NAME
    with unit_of_work(db.session) as session:
        viewed(session, "a", clock)
    written = head()
    assert not witness_file.exists()
    run_worker(app)
    (on_disk,) = json.loads(witness_file.read_text()).values()
    assert (on_disk["seq"], on_disk["hash"]) == written


def test_a_head_that_may_still_roll_back_is_never_witnessed(app: Flask, clock: FixedClock) -> None:
    """Events recorded outside a unit of work (a link's first open, say) are followed by reads
    in the same transaction; if it rolls back, the next event takes the same number with
    another hash, and a witness of the rolled-back head would call that a rewrite."""

    with unit_of_work(db.session) as session:
        viewed(session, "committed", clock)
    assert head_cache.chain_break(db.session) is None
    db.session.rollback()
    viewed(db.session, "rolled back", clock)
    assert head_cache.committed_head(db.session) is None
    assert head_cache.chain_break(db.session) is None
    db.session.rollback()
    with unit_of_work(db.session) as session:
        viewed(session, "taken instead", clock)
    assert head_cache.chain_break(db.session) is None
    db.session.rollback()
    assert head_witness.witness_of(db.engine).seen.head == head()


def test_an_older_read_snapshot_is_not_a_restore(app: Flask, clock: FixedClock) -> None:
    """A transaction that began before another thread of the process read a newer head sees
    an older one; checked again on its own connection, that is no alarm."""
    witness = head_witness.witness_of(db.engine)
    with unit_of_work(db.session) as session:
        viewed(session, "a", clock)
    # PostgreSQL's REPEATABLE READ and SQLite's deferred BEGIN both fix the snapshot at the
    # transaction's first read.
    with snapshot_connection() as old:
        older = audit.latest_on(old)
        with unit_of_work(db.session) as session:
            viewed(session, "b", clock)
        with db.engine.connect() as fresh:
            newer, broken = witness.observe(fresh)
            assert broken is None
        assert witness.seen is not None
        assert witness.seen.head == newer
        assert witness.observe(old) == (older, None)
        assert witness.seen.head == newer, "an older head is never witnessed"


@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_new_database_in_the_same_place(
    database_url: str, tmp_path: Path, clock: FixedClock, environment: str
) -> None:
    """A developer who deletes the database starts afresh; production says the chain went
    back, since the same start would let someone replace the database with an emptier one."""
    instance = tmp_path / "instance"
    instance.mkdir()
    entry = head_witness.entry_name(sa.make_url(database_url).render_as_string(hide_password=True))
    (instance / WITNESS_FILE_NAME).write_text(
        json.dumps({entry: {"seq": 40, "hash": "a" * 64, "origin": "b" * 64}})
    )
    environ = (
        production_environ() if environment == "production" else {"GATEKEEPER_ENV": environment}
    )
    app = make_app(database_url, instance, clock, **environ)
    with app.app_context():
        with unit_of_work(db.session) as session:
            viewed(session, "a", clock)
        with db.engine.connect() as connection:
            _head, found = head_witness.witness_of(db.engine).observe(connection)
    dispose(app)
    if environment == "development":
        assert found is None
    else:
        assert found == "went back from event 40 to event 1"


def test_an_unreadable_witness_file_stops_the_start(
    database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    witness = tmp_path / "witness.json"
    witness.write_text("not json")
    with pytest.raises(SettingsError, match=r"GATEKEEPER_AUDIT_WITNESS_FILE: .*witness\.json"):
        make_app(
            database_url, tmp_path / "instance", clock, GATEKEEPER_AUDIT_WITNESS_FILE=str(witness)
        )


def production_environ() -> dict[str, str]:
    return {
        "GATEKEEPER_ENV": "production",
        "GATEKEEPER_BASE_URL": "https://gatekeeper.example.com",
        "GATEKEEPER_MAIL_SERVER": "127.0.0.1",
        "GATEKEEPER_MAIL_SENDER": "gatekeeper@example.com",
    }


def snapshot_connection() -> sa.Connection:
    connection = db.engine.connect()
    if db.engine.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


def test_a_witness_file_that_cannot_be_written_leaves_memory_witnessing(
    database_url: str, tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    # procfs creates no files, not even for root (whom permissions would not stop).
    unwritable = Path("/proc/self") / WITNESS_FILE_NAME
    app = make_app(
        database_url,
        tmp_path / "instance",
        clock,
        GATEKEEPER_AUDIT_WITNESS_FILE=str(unwritable),
    )
    with app.app_context(), caplog.at_level(logging.WARNING):
        with unit_of_work(db.session) as session:
            viewed(session, "a", clock)
        witness = head_witness.witness_of(db.engine)
        with db.engine.connect() as connection:
            written, broken = witness.observe(connection)
        assert broken is None
        assert witness.vouches_for(written)
    dispose(app)
    assert any("cannot write" in r.getMessage() for r in caplog.records)

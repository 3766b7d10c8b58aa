"""Someone with write access to the database but none of the keys cannot open a gate or forge
history: forged or edited sign-offs and governance approvals never count and are named, and a
forged audit event with recomputed hashes fails `audit verify` and `verify-export`.

Every write below goes straight to the database, past the services, as such an attacker would.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import (
    AuditEvent,
    ChecklistVersion,
    GovernanceReview,
    Package,
    PackageApplication,
    Signoff,
    SignoffRequest,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.audit import ChainedEvent
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.signoff import Decision
from gatekeeper.runtime import runtime
from gatekeeper.services import audit, evidence, integrity, packages
from tests.conftest import dispose, make_app
from tests.support.governance import (
    BOARD,
    approve,
    checklist_dir,
    gate,
    sign_everything,
    submit,
    sync,
    write_version,
)
from tests.support.keys import RECORD_KEY, write_audit_key

KEY = "2026.12-t1"


def prepared(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    sync(app, clock, checklist_dir(tmp_path))
    approve(clock, "payments-api", 7)
    submit(clock, KEY, {"payments-api": "7.4.0"})


def pending() -> list[SignoffRequest]:
    try:
        return packages.pending_requests(db.session, KEY)
    finally:
        db.session.rollback()


def forge_signoffs(
    requests: list[SignoffRequest], now: datetime, *, mac: str | None = "0" * 64
) -> list[int]:
    """INSERT a positive sign-off for each request, with the key id real rows carry and a MAC
    the attacker cannot compute."""
    key_id = integrity.record_key_id(RECORD_KEY)
    package_id = db.session.scalar(sa.select(Package.id).where(Package.key == KEY))
    ids = []
    with db.engine.begin() as connection:
        for request in requests:
            positive = "pass" if request.kind == "item" else "confirmed"
            ids.append(
                connection.execute(
                    sa.insert(Signoff)
                    .values(
                        package_id=package_id,
                        package_application_id=request.package_application_id,
                        request_id=request.id,
                        kind=request.kind,
                        section_id=request.section_id,
                        item_id=request.item_id,
                        signer=request.signer,
                        decision=positive,
                        comment="",
                        evidence="https://ci.example.com/forged",
                        scenarios_confirmed="0,1,2,3",
                        revision=1,
                        signed_at=now,
                        mac=mac,
                        mac_key_id=key_id,
                    )
                    .returning(Signoff.id)
                ).scalar_one()
            )
    db.session.rollback()
    return ids


def tampering(result: gate_rules.GateResult) -> list[str]:
    """The TAMPERING_DETECTED blockers naming a record (not the package's seal)."""
    return [
        b.message
        for b in result.blockers
        if b.code == gate_rules.TAMPERING_DETECTED and "record seal" not in b.message
    ]


def seal_broken(result: gate_rules.GateResult) -> bool:
    return any(
        b.code == gate_rules.TAMPERING_DETECTED and "record seal" in b.message
        for b in result.blockers
    )


def assert_forgeries_refused(app: Flask, clock: FixedClock, forged: list[int]) -> None:
    """The assertions a MAC check makes true (the mutation test below shows they need it)."""
    fresh = gate(app, clock, KEY)
    assert fresh.status == gate_rules.BLOCKED
    assert not set(forged) & set(fresh.counted)
    named = tampering(fresh)
    assert len(named) == len(forged)
    assert seal_broken(fresh), "rows the package never held were added"
    for signoff_id in forged:
        assert any(m.startswith(f"sign-off {signoff_id} (") for m in named), named


def test_forged_sign_offs_never_count_and_are_named(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    requests = pending()
    forged = forge_signoffs(requests, clock.now())
    assert_forgeries_refused(app, clock, forged)
    named = " ".join(tampering(gate(app, clock, KEY)))
    assert f"by {requests[0].signer} on payments-api does not carry a valid record MAC" in named
    # A row with no MAC at all (as if written before record MACs) does not count either.
    bare = forge_signoffs(requests[:1], clock.now(), mac=None)
    assert not set(bare) & set(gate(app, clock, KEY).counted)


def test_removing_the_mac_check_makes_the_tamper_test_fail(
    app: Flask, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation check: with a verifier that accepts everything, the forged sign-offs open the
    gate and the tamper test's own assertions fail."""
    prepared(app, clock, tmp_path)
    forged = forge_signoffs(pending(), clock.now())
    monkeypatch.setattr(integrity.RecordKeys, "verifies", lambda *_args: True)
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    with pytest.raises(AssertionError):
        assert_forgeries_refused(app, clock, forged)


def test_an_edited_decision_is_named_and_not_counted(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    request = pending()[0]
    with unit_of_work(db.session) as session:
        packages.record_signoff(
            session, request.id, Decision("item", "fail", comment="broken"), clock=clock
        )
    signoff_id = db.session.scalar(sa.select(Signoff.id).where(Signoff.request_id == request.id))
    db.session.rollback()
    assert gate(app, clock, KEY).blockers[0].code == gate_rules.ITEM_FAILED
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(Signoff).where(Signoff.id == signoff_id).values(decision="pass")
        )
    result = gate(app, clock, KEY)
    assert signoff_id not in result.counted
    assert gate_rules.ITEM_FAILED not in {b.code for b in result.blockers}
    assert tampering(result) == [
        f"sign-off {signoff_id} (item) by {request.signer} on payments-api does not carry a "
        "valid record MAC: it was written or changed outside Gatekeeper and is not counted"
    ]


def test_a_sign_off_moved_to_another_environment_stops_counting(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """What the signer saw is inside the MAC: an environment changed by SQL, with no new
    revision, is tampering, not a carried-forward sign-off."""
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(Package).where(Package.key == KEY).values(environment="staging")
        )
    result = gate(app, clock, KEY)
    assert result.status == gate_rules.BLOCKED
    assert result.counted == ()
    assert len(tampering(result)) == len(db.session.scalars(sa.select(Signoff.id)).all())


def test_the_cached_gate_never_counts_a_forged_row(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """A forged row written without an audit event does not move the audit head the cache is
    keyed on: the cache keeps serving the answer it computed before the forgery (which could
    not count it), and the next audited change makes every process evaluate afresh and name
    it."""
    prepared(app, clock, tmp_path)
    requests = pending()
    before = runtime(app).gate_now(db.session, KEY)
    db.session.rollback()
    forged = forge_signoffs(requests[1:], clock.now())
    served = runtime(app).gate_now(db.session, KEY)
    db.session.rollback()
    assert served == before
    assert served.status == gate_rules.PENDING
    assert not set(forged) & set(served.counted)
    with unit_of_work(db.session) as session:
        packages.record_signoff(
            session,
            requests[0].id,
            Decision("item", "pass", evidence="https://ci.example.com/1"),
            clock=clock,
        )
    served = runtime(app).gate_now(db.session, KEY)
    db.session.rollback()
    assert served == gate(app, clock, KEY)
    assert len(tampering(served)) == len(forged)
    assert seal_broken(served)
    assert not set(forged) & set(served.counted)


def test_a_checklist_approved_by_sql_is_not_approved(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    write_version(directory, "payments-api", 8)
    sync(app, clock, directory)
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(ChecklistVersion)
            .where(ChecklistVersion.version == 8)
            .values(state="approved")
        )
    submit(clock, KEY, {"payments-api": "7.4.0"})
    sign_everything(clock, KEY)
    result = gate(app, clock, KEY)
    assert result.status == gate_rules.BLOCKED
    assert gate_rules.CHECKLIST_NOT_APPROVED in {b.code for b in result.blockers}


def test_a_forged_governance_review_neither_approves_nor_postpones_a_review(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    clock.advance(timedelta(days=91))
    assert gate(app, clock, KEY).blockers[0].code == gate_rules.REVIEW_OVERDUE
    version_id = db.session.scalar(
        sa.select(ChecklistVersion.id).where(ChecklistVersion.version == 7)
    )
    with db.engine.begin() as connection:
        review_id = connection.execute(
            sa.insert(GovernanceReview)
            .values(
                checklist_version_id=version_id,
                reviewer=BOARD,
                outcome="reaffirmed",
                consulted="nobody",
                notes="",
                reviewed_at=clock.now(),
                mac="f" * 64,
                mac_key_id=integrity.record_key_id(RECORD_KEY),
            )
            .returning(GovernanceReview.id)
        ).scalar_one()
    db.session.rollback()
    codes = {b.code for b in gate(app, clock, KEY).blockers}
    assert {gate_rules.REVIEW_OVERDUE, gate_rules.TAMPERING_DETECTED} <= codes
    assert f"governance review {review_id} by {BOARD} on payments-api" in " ".join(
        tampering(gate(app, clock, KEY))
    )


def forge_audit_event(now: datetime, *, signature: str | None, key_id: str | None) -> int:
    """INSERT the next audit event with its hash recomputed, as the chain alone allows."""
    head = db.session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).one()
    event = ChainedEvent(
        seq=head.seq + 1,
        occurred_at=now,
        actor="raj@example.com",
        action="signoff.recorded",
        subject="payments-api: forged",
        package=KEY,
        revision=1,
        client_address=None,
        user_agent=None,
        details=json.dumps({"decision": "pass"}),
        prev_hash=head.hash,
    )
    db.session.rollback()
    with db.engine.begin() as connection:
        connection.execute(
            sa.insert(AuditEvent).values(
                seq=event.seq,
                occurred_at=event.occurred_at,
                actor=event.actor,
                action=event.action,
                subject=event.subject,
                package=event.package,
                revision=event.revision,
                details=event.details,
                prev_hash=event.prev_hash,
                hash=event.computed_hash(),
                signature=signature,
                key_id=key_id,
            )
        )
    return event.seq


@pytest.mark.parametrize("copied", [False, True], ids=["unsigned", "copied-signature"])
def test_a_forged_audit_event_with_recomputed_hashes_is_named(
    app: Flask, clock: FixedClock, tmp_path: Path, runner: FlaskCliRunner, copied: bool
) -> None:
    prepared(app, clock, tmp_path)
    intact = runner.invoke(cli, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "every signature valid" in intact.stdout
    real = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).first()
    assert real is not None
    assert real.signature
    signature, key_id = (real.signature, real.key_id) if copied else (None, None)
    seq = forge_audit_event(clock.now(), signature=signature, key_id=key_id)
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"audit chain broken at event {seq}:" in result.stderr
    expected = "signature does not verify" if copied else "has no signature"
    assert expected in result.stderr


def test_verify_export_checks_every_signature_offline(
    app: Flask, clock: FixedClock, tmp_path: Path, runner: FlaskCliRunner
) -> None:
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    for fmt in ("json", "html"):
        target = tmp_path / f"pack.{fmt}"
        exported = runner.invoke(cli, ["audit", "export", KEY, "--format", fmt, "-o", str(target)])
        assert exported.exit_code == 0, exported.output
        checked = runner.invoke(cli, ["audit", "verify-export", str(target)])
        assert checked.exit_code == 0, checked.output
        key_id = integrity.audit_key_id(
            integrity.keyring_of(db.session).audit.signing_key.public_key()
        )
        assert f"audit keys {key_id}" in checked.stdout
    assert (
        f'public key id(s) <span class="hash">{key_id}</span>'
        in (tmp_path / "pack.html").read_text()
    )
    pack = json.loads((tmp_path / "pack.json").read_text())
    assert pack["audit_keys"] == integrity.keyring_of(db.session).audit.published()
    # An attacker edits an event, recomputes its hash and the pack's digest: only the
    # signature, which needs the private key, gives it away.
    event = pack["audit_events"][-1]
    event["actor"] = "mallory@example.com"
    event["hash"] = ChainedEvent(
        **{
            **{k: event[k] for k in ChainedEvent.__slots__ if k in event},
            "occurred_at": datetime.fromisoformat(event["occurred_at"]),
            "signature": None,
            "key_id": None,
            "hash": "",
        }
    ).computed_hash()
    pack["digest"] = evidence.pack_digest(pack)
    (tmp_path / "edited.json").write_text(json.dumps(pack))
    edited = runner.invoke(cli, ["audit", "verify-export", str(tmp_path / "edited.json")])
    assert edited.exit_code == 1
    assert f"audit event {event['seq']}: its signature does not verify" in edited.stderr
    # Pinning a key the auditor holds: a pack whose events another key signed fails.
    other = write_audit_key(tmp_path / "other.pem", public_only=True)
    pinned = runner.invoke(
        cli, ["audit", "verify-export", str(tmp_path / "pack.json"), "--key", str(other)]
    )
    assert pinned.exit_code == 1
    assert "which is not known" in pinned.stderr


def test_rotation_verifies_with_any_listed_key_and_signs_with_the_first(
    app: Flask, clock: FixedClock, tmp_path: Path, database_url: str, runner: FlaskCliRunner
) -> None:
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    old_audit = integrity.keyring_of(db.session).audit
    db.session.rollback()
    new_record, new_audit = "n" * 40, write_audit_key(tmp_path / "new.pem")
    # The retired key stays listed by its public half only: it verifies, it no longer signs.
    old_file = tmp_path / "old-public.pem"
    old_file.write_bytes(
        old_audit.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rotated = make_app(
        database_url,
        tmp_path / "rotated",
        clock,
        GATEKEEPER_RECORD_KEYS=f"{new_record},{RECORD_KEY}",
        GATEKEEPER_AUDIT_SIGNING_KEY_FILE=f"{new_audit},{old_file}",
    )
    try:
        with rotated.app_context():
            assert gate(rotated, clock, KEY).status == gate_rules.OPEN
            with unit_of_work(db.session) as session:
                event = audit.record(
                    session, action="test.event", actor="t", subject="s", now=clock.now()
                )
                assert event.key_id == integrity.audit_key_id(
                    integrity.keyring_of(session).audit.signing_key.public_key()
                )
                assert event.key_id != old_audit.signing_key_id
            assert audit.verify(db.session).ok
            db.session.rollback()
            result = rotated.test_cli_runner().invoke(cli, ["audit", "verify"])
            assert result.exit_code == 0, result.output
        retired = make_app(
            database_url, tmp_path / "retired", clock, GATEKEEPER_RECORD_KEYS=new_record
        )
        try:
            with retired.app_context():
                result = gate(retired, clock, KEY)
                assert result.status == gate_rules.BLOCKED
                assert result.counted == ()
        finally:
            dispose(retired)
    finally:
        dispose(rotated)


def test_seal_records_counts_rows_older_than_record_macs_again(
    app: Flask, clock: FixedClock, tmp_path: Path, runner: FlaskCliRunner
) -> None:
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    with db.engine.begin() as connection:
        connection.execute(sa.update(Signoff).values(mac=None, mac_key_id=None))
        connection.execute(sa.update(GovernanceReview).values(mac=None, mac_key_id=None))
    unsealed = gate(app, clock, KEY)
    assert unsealed.status == gate_rules.BLOCKED
    assert unsealed.counted == ()
    result = runner.invoke(cli, ["audit", "seal-records", "--actor", "ops@example.com"])
    assert result.exit_code == 0, result.output
    signoffs = len(db.session.scalars(sa.select(Signoff.id)).all())
    assert f"sealed {signoffs} sign-off(s) and 1 governance review(s)" in result.stdout
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    sealed = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "records.sealed"))
    assert sealed is not None
    assert sealed.actor == "ops@example.com"
    assert len(json.loads(sealed.details)["signoffs"]) == signoffs


# --- rows taken away: the package seal ------------------------------------------------------


def record(clock: FixedClock, request: SignoffRequest, decision: str) -> int:
    with unit_of_work(db.session) as session:
        if request.kind == "item":
            made = Decision("item", decision, evidence="https://ci.example.com/1", comment="x")
        else:
            made = Decision("key_user", "problem", comment="it broke")
        return packages.record_signoff(session, request.id, made, clock=clock).id


def test_deleting_a_failed_sign_off_by_sql_breaks_the_seal_for_good(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """What record MACs alone could not catch: a genuine `fail` deleted, so its blocker goes."""
    prepared(app, clock, tmp_path)
    first, *others = pending()
    failed = record(clock, first, "fail")
    assert not seal_broken(gate(app, clock, KEY))
    with db.engine.begin() as connection:
        connection.execute(sa.delete(Signoff).where(Signoff.id == failed))
    deleted = gate(app, clock, KEY)
    assert deleted.status == gate_rules.BLOCKED
    assert seal_broken(deleted)
    # A later genuine sign-off is recorded and counted, and cannot launder the deletion.
    later = record(clock, others[0], "pass")
    after = gate(app, clock, KEY)
    assert later in after.counted
    assert seal_broken(after)
    sign_everything(clock, KEY)
    assert seal_broken(everything := gate(app, clock, KEY))
    assert everything.status == gate_rules.BLOCKED
    assert seal_broken(runtime(app).gate_now(db.session, KEY)), "the cached gate alike"


@pytest.mark.parametrize(
    "tamper",
    [
        sa.update(Signoff).values(stale_since_revision=1),
        sa.update(PackageApplication).values(removed_in_revision=1),
        sa.update(PackageApplication).values(changed_in_revision=2),
    ],
    ids=["sign-off-marked-stale", "application-removed", "application-changed"],
)
def test_marking_sign_offs_stale_or_moving_applications_by_sql_breaks_the_seal(
    app: Flask, clock: FixedClock, tmp_path: Path, tamper: sa.Update
) -> None:
    prepared(app, clock, tmp_path)
    first, *_ = pending()
    record(clock, first, "fail")
    with db.engine.begin() as connection:
        connection.execute(tamper)
    found = gate(app, clock, KEY)
    assert found.status == gate_rules.BLOCKED
    assert seal_broken(found)


def test_a_package_without_a_seal_stays_shut_until_seal_records(
    app: Flask, clock: FixedClock, tmp_path: Path, runner: FlaskCliRunner
) -> None:
    """Packages made before package seals, or a seal erased by SQL: nothing counts as sealed
    until an operator seals what the packages hold, which the audit trail records."""
    prepared(app, clock, tmp_path)
    sign_everything(clock, KEY)
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    with db.engine.begin() as connection:
        connection.execute(sa.update(Package).values(record_seal=None))
    unsealed = gate(app, clock, KEY)
    assert unsealed.status == gate_rules.BLOCKED
    assert seal_broken(unsealed)
    result = runner.invoke(cli, ["audit", "seal-records", "--actor", "ops@example.com"])
    assert result.exit_code == 0, result.output
    assert "and 1 package(s)" in result.stdout
    assert gate(app, clock, KEY).status == gate_rules.OPEN
    sealed = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "records.sealed"))
    assert sealed is not None
    assert json.loads(sealed.details)["packages"] == [KEY]

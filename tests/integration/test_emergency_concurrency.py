"""A declaration of an emergency racing the last normal sign-off, with real threads and
connections on SQLite and PostgreSQL: exactly one consistent outcome every time."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Emergency, OutboxMessage, Package, Signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict
from gatekeeper.runtime import runtime
from gatekeeper.services import packages
from tests.support.emergency import declare, submitted
from tests.support.flows import decisions_for, race, submit

LAST = "l10n@example.com"  # the only signer of storefront-web's translations item
ROUNDS = 12


def test_an_emergency_racing_the_last_sign_off_ends_one_way(app: Flask, clock: FixedClock) -> None:
    outcomes: set[str] = set()
    for round_number in range(ROUNDS):
        key = f"2026.12-race{round_number}"
        submitted(app, clock, key, sync=round_number == 0)
        mine = _tokens_for(key)
        for who, token in mine.items():
            if who != LAST:
                submit(app, token, decisions_for(app, token, clock), clock)
        assert [b.item for b in _gate(clock, key).blockers] == ["translations"]
        last = mine[LAST]
        decisions = decisions_for(app, last, clock)
        results = race(
            app,
            [
                lambda t=last, d=decisions: submit(app, t, d, clock),
                lambda k=key: declare(app, clock, k),
            ],
        )
        signed, declared = results
        assert signed is None, signed  # the sign-off is recorded whatever the order
        package_id = db.session.scalar(sa.select(Package.id).where(Package.key == key))
        recorded = db.session.scalars(
            sa.select(Signoff).where(Signoff.package_id == package_id, Signoff.signer == LAST)
        ).all()
        emergency = db.session.scalar(
            sa.select(Emergency).where(Emergency.package_id == package_id)
        )
        db.session.rollback()
        assert len(recorded) == 1
        gate = _gate(clock, key)
        if declared is None:
            # The declaration came first: emergency mode, waiting on its approvers.
            assert emergency is not None
            assert (gate.mode, gate.status) == ("emergency", "pending")
            assert [b.code for b in gate.blockers] == ["EMERGENCY_APPROVAL_PENDING"]
            outcomes.add("emergency")
        else:
            # The sign-off came first and opened the gate: no emergency is needed.
            assert isinstance(declared, Conflict), declared
            assert emergency is None
            assert (gate.mode, gate.status) == ("normal", "open")
            outcomes.add("normal")
        cached = runtime(app).gate_now(db.session, key)
        db.session.rollback()
        assert cached.to_dict() == gate.to_dict()
    # Which order wins is the scheduler's choice; each round ended in one of the two.
    assert outcomes <= {"emergency", "normal"}
    assert outcomes


def _gate(clock: FixedClock, key: str) -> packages.gate_rules.GateResult:
    result = packages.evaluate_gate(db.session, key, clock=clock, overdue_policy="block")
    db.session.rollback()
    return result


def _tokens_for(key: str) -> dict[str, str]:
    found: dict[str, str] = {}
    query = (
        sa.select(OutboxMessage)
        .where(OutboxMessage.template == "signoff_request", OutboxMessage.body_text.contains(key))
        .order_by(OutboxMessage.id)
    )
    for message in db.session.scalars(query):
        found[message.to_address] = message.body_text.split("/s/", 1)[1].split()[0]
    db.session.rollback()
    return found

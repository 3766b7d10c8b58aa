"""The batched gate loader agrees with the per-package one, in six queries for any number."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Package
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import gates, packages
from tests.conftest import SAMPLES
from tests.functional.api_helpers import (
    RELEASE_MANAGER,
    create_package,
    recorded_statements,
    sign,
    sync_and_approve,
)

# Packages, active applications with pinned checklists, last governance reviews, untriaged
# post-release findings, open learning reviews and action items, sign-offs, the absences not yet
# over (some packages are in review: who is away decides whom they wait on), the newest
# approved freeze calendar (one for every package), and emergencies (the packages' own with
# their approvals, and open post-implementation reviews of their applications), and the audit
# head with the event at the witnessed sequence number (services/head_witness.py).
BATCH_QUERIES = 10


def _packages_in_every_state(clock: FixedClock) -> None:
    sync_and_approve(SAMPLES, clock)
    create_package(clock, "draft", {"payments-api": "1"}, submit=False)
    create_package(clock, "empty-draft", {}, submit=False)
    create_package(clock, "pending", {"payments-api": "1", "storefront-web": "2"})
    sign(clock, "pending", application="payments-api", limit=4)
    create_package(clock, "blocked", {"storefront-web": "2"})
    sign(
        clock,
        "blocked",
        limit=1,
        decision=signoff.Decision(signoff.ITEM, signoff.FAIL, comment="broken"),
    )
    create_package(clock, "edited", {"payments-api": "1", "identity-platform": "3"})
    sign(clock, "edited", limit=6)
    clock.advance(timedelta(hours=1))
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            "edited",
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", "1.1"),)
            ),
            actor=RELEASE_MANAGER,
            clock=clock,
        )
    create_package(clock, "cancelled", {"payments-api": "1"})
    with unit_of_work(db.session) as session:
        packages.cancel_package(session, "cancelled", actor=RELEASE_MANAGER, clock=clock)
    create_package(clock, "open", {"payments-api": "1"})
    sign(clock, "open")


def test_batched_gate_inputs_match_the_per_package_gate(app: Flask, clock: FixedClock) -> None:
    _packages_in_every_state(clock)
    clock.advance(timedelta(days=200))  # reviews are overdue now: that must agree too
    ids = dict(db.session.execute(sa.select(Package.key, Package.id)).all())
    db.session.remove()
    with recorded_statements() as statements:
        inputs = gates.gate_inputs(
            db.session, list(ids.values()), now=clock.now(), overdue_policy="block"
        )
    queries = [s for s in statements if s.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert len(queries) == BATCH_QUERIES, queries
    statuses = {}
    for key, package_id in ids.items():
        batched = gate_rules.evaluate(inputs[package_id])
        single = packages.evaluate_gate(db.session, key, clock=clock, overdue_policy="block")
        assert batched.to_dict() == single.to_dict(), key
        statuses[key] = batched.status
    assert statuses["open"] == "blocked"  # overdue review, policy block
    assert statuses["blocked"] == "blocked"
    warned = gates.gate_inputs(db.session, [ids["open"]], now=clock.now(), overdue_policy="warn")
    assert gate_rules.evaluate(warned[ids["open"]]).status == "open"


def test_no_packages_no_queries(app: Flask, clock: FixedClock) -> None:
    with recorded_statements() as statements:
        assert gates.gate_inputs(db.session, [], now=clock.now(), overdue_policy="block") == {}
    assert statements == []

"""A hypothesis state machine over the whole workflow, checked against an independent oracle.

Invariant: the gate is open exactly when every required, current, eligible sign-off exists, none
failed, and governance allows it; and a release succeeds only then.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy.orm import Session

from gatekeeper.db.base import db
from gatekeeper.db.models import GovernanceReview, Signoff, SignoffRequest
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import GatekeeperError
from gatekeeper.domain.signoff import Decision, technical_signers
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, packages, signoffs
from gatekeeper.services.checklists import checklist_of
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES

pytestmark = pytest.mark.reliability
MANAGER = "release-manager@example.com"
APPS = ("payments-api", "storefront-web")
REVIEWER = "release-board@example.com"
POSITIVE = {"pass", "not_applicable", "confirmed"}
NEGATIVE = {"fail", "problem"}


def approve_both(session: Session, clock: FixedClock) -> None:
    """Approve (or reaffirm, when already approved) both sample checklists."""
    for slug, version in (("payments-api", 7), ("storefront-web", 12)):
        checklists.review_version(
            session,
            application=slug,
            version=version,
            action="approve",
            reviewer=REVIEWER,
            consulted="key users",
            clock=clock,
        )


def approve_samples(clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        checklists.sync_checklists(
            session, SAMPLES, clock=clock, declared_authors=[CHECKLIST_AUTHOR]
        )
        approve_both(session, clock)


def oracle(key: str, clock: FixedClock) -> bool:
    """Open or not, computed from the rows with none of the gate's code."""
    package = packages.get_package(db.session, key)
    if package.state != "in_review":
        return False
    now = clock.now()
    for target in package.applications:
        if target.removed_in_revision is not None:
            continue
        if target.checklist_version is None or target.checklist_version.state != "approved":
            return False
        checklist = checklist_of(target.checklist_version)
        last_review = db.session.scalar(
            sa.select(sa.func.max(GovernanceReview.reviewed_at))
            .join(GovernanceReview.checklist_version)
            .where(
                GovernanceReview.outcome.in_(("approved", "reaffirmed")),
                GovernanceReview.checklist_version.has(application_id=target.application_id),
            )
        )
        if last_review and now >= last_review + timedelta(
            days=checklist.governance.review_every_days
        ):
            return False
        rows = db.session.scalars(
            sa.select(Signoff)
            .where(
                Signoff.package_application_id == target.id,
                Signoff.stale_since_revision.is_(None),
                Signoff.revision >= target.changed_in_revision,
            )
            .order_by(Signoff.signed_at, Signoff.id)
        ).all()
        latest: dict[tuple[str | None, str], str] = {}
        for row in rows:
            latest[(row.item_id, row.signer)] = row.decision
        for _, item in checklist.items():
            eligible = [s for s in item.signers if s != package.assembled_by]
            decided = [latest[(item.id, s)] for s in eligible if (item.id, s) in latest]
            if any(d in NEGATIVE for d in decided):
                return False
            needed = len(item.signers) if item.quorum == "all" else item.quorum
            if sum(d in POSITIVE for d in decided) < needed:
                return False
        engineers = technical_signers(checklist)
        users = [
            u
            for u in checklist.user_validation.emails
            if u != package.assembled_by and u not in engineers
        ]
        decided = [latest[(None, u)] for u in users if (None, u) in latest]
        if any(d in NEGATIVE for d in decided):
            return False
        if sum(d in POSITIVE for d in decided) < checklist.user_validation.required:
            return False
    return True


def machine_for(app: Flask, clock: FixedClock, seen: dict[str, int]) -> type[RuleBasedStateMachine]:
    keys = count(1)
    links = runtime(app).link_settings()

    class Workflow(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.key = f"sm-{next(keys)}"
            self.versions = dict.fromkeys(APPS, 0)
            self.released = False
            with unit_of_work(db.session) as session:
                # Every example starts with freshly reviewed checklists, whatever time the
                # earlier examples advanced the shared clock to.
                approve_both(session, clock)
                packages.create_package(
                    session,
                    packages.PackageSpec(
                        self.key,
                        "State machine",
                        "prod",
                        None,
                        tuple(packages.ApplicationSpec(a, "1.0") for a in APPS),
                    ),
                    assembler=MANAGER,
                    clock=clock,
                )
                signoffs.submit_for_signoff(
                    session, self.key, actor=MANAGER, clock=clock, links=links
                )

        def pending(self) -> list[SignoffRequest]:
            found = packages.pending_requests(db.session, self.key)
            db.session.rollback()
            return found

        @precondition(lambda self: not self.released)
        @rule(data=st.data(), positive=st.booleans())
        def sign(self, data: st.DataObject, positive: bool) -> None:
            pending = self.pending()
            if not pending:
                return
            request = data.draw(st.sampled_from(pending))
            if request.kind == "item":
                decision = (
                    Decision("item", "pass", evidence="https://e.example/1", comment="ok")
                    if positive
                    else Decision("item", "fail", comment="broken")
                )
            else:
                scenarios = tuple(range(4))
                decision = (
                    Decision("key_user", "confirmed", scenarios_confirmed=scenarios[:3])
                    if positive
                    else Decision("key_user", "problem", comment="it broke")
                )
            try:
                with unit_of_work(db.session) as session:
                    packages.record_signoff(session, request.id, decision, clock=clock)
            except GatekeeperError:
                pass  # e.g. a key user of storefront-web has four scenarios: invalid, refused

        @precondition(lambda self: not self.released)
        @rule(data=st.data())
        def sign_everything_positive(self, data: st.DataObject) -> None:
            for request in self.pending():
                checklist = checklist_of(
                    request.package_application.checklist_version  # type: ignore[arg-type]
                )
                if request.kind == "item":
                    decision = Decision(
                        "item", "pass", evidence="https://e.example/1", comment="ok"
                    )
                else:
                    scenarios = tuple(range(len(checklist.user_validation.scenarios)))
                    decision = Decision("key_user", "confirmed", scenarios_confirmed=scenarios)
                with unit_of_work(db.session) as session:
                    packages.record_signoff(session, request.id, decision, clock=clock)

        @precondition(lambda self: not self.released)
        @rule(slug=st.sampled_from(APPS))
        def edit(self, slug: str) -> None:
            self.versions[slug] += 1
            specs = tuple(packages.ApplicationSpec(a, f"1.{self.versions[a]}") for a in APPS)
            with unit_of_work(db.session) as session:
                signoffs.edit_and_reissue(
                    session,
                    self.key,
                    packages.PackageChanges(applications=specs),
                    actor=MANAGER,
                    clock=clock,
                    links=links,
                )

        @rule(days=st.integers(min_value=1, max_value=70))
        def advance_clock(self, days: int) -> None:
            clock.advance(timedelta(days=days))

        @rule(slug=st.sampled_from(APPS))
        def reaffirm(self, slug: str) -> None:
            version = 7 if slug == "payments-api" else 12
            with unit_of_work(db.session) as session:
                checklists.review_version(
                    session,
                    application=slug,
                    version=version,
                    action="approve",
                    reviewer=REVIEWER,
                    consulted="key users again",
                    clock=clock,
                )

        @precondition(lambda self: not self.released)
        @rule()
        def release(self) -> None:
            gate = packages.evaluate_gate(db.session, self.key, clock=clock, overdue_policy="block")
            expected_open = oracle(self.key, clock)
            db.session.rollback()
            try:
                with unit_of_work(db.session) as session:
                    packages.release_package(
                        session,
                        self.key,
                        digest=gate.digest,
                        actor="ci",
                        clock=clock,
                        overdue_policy="block",
                    )
            except GatekeeperError:
                assert not expected_open, "an open gate refused to release"
                return
            assert expected_open, "released while the oracle says the gate is not open"
            self.released = True

        @invariant()
        def gate_is_open_exactly_when_the_oracle_says(self) -> None:
            gate = packages.evaluate_gate(db.session, self.key, clock=clock, overdue_policy="block")
            expected = oracle(self.key, clock)
            db.session.rollback()
            # What CI polls goes through the gate cache: it must never differ from a fresh
            # evaluation, whatever happened since it last evaluated (or how far the clock moved).
            cached = runtime(app).gate_now(db.session, self.key)
            db.session.rollback()
            assert cached == gate
            if self.released:
                return
            seen[gate.status] = seen.get(gate.status, 0) + 1
            assert (gate.status == "open") == expected, (gate.status, gate.blockers)

    return Workflow


def test_the_gate_matches_the_oracle_through_any_workflow(app: Flask, clock: FixedClock) -> None:
    approve_samples(clock)
    seen: dict[str, int] = {}
    machine = machine_for(app, clock, seen)
    machine.TestCase.settings = settings(
        max_examples=35,
        stateful_step_count=12,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    run = machine.TestCase("runTest")
    run.runTest()
    print(seen)
    assert seen.get("open", 0) > 0, f"the workflow never reached an open gate: {seen}"
    assert seen.get("blocked", 0) > 0, f"the workflow never reached a blocked gate: {seen}"
    cache = runtime(app).gate_cache
    assert cache.hits > 0, "no step ever reused a cached gate: the cache went untested"
    assert cache.misses > 0

"""A hypothesis state machine over the whole workflow, checked against an independent oracle.

Invariant: the gate is open exactly when every required, current, eligible sign-off exists, none
failed, and governance allows it, and no current sign-off was forged; and a release succeeds
only then. Tampering steps write sign-offs straight into the database (or change a decision
there), as someone with write access but no record key would: the oracle expects each current
forged row to be named by a TAMPERING_DETECTED blocker and never counted.

Two profiles (HYPOTHESIS_PROFILE): "quick", the default CI runs (35 examples of up to 12 steps),
and "deep" (docs/security.md), at least 10,000 steps in all:

    HYPOTHESIS_PROFILE=deep nice pytest -p no:cacheprovider -s \
        tests/reliability/test_workflow_state_machine.py
"""

from __future__ import annotations

import os
import re
import time
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
from gatekeeper.db.models import (
    ActionItem,
    GovernanceReview,
    Signoff,
    SignoffLink,
    SignoffRequest,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import learning
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, GatekeeperError, ValidationFailed
from gatekeeper.domain.signoff import Decision, technical_signers
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    audit,
    checklists,
    integrity,
    learning_reviews,
    packages,
    proposals,
    signoffs,
)
from gatekeeper.services.checklists import checklist_of
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES
from tests.support.keys import RECORD_KEY

pytestmark = pytest.mark.reliability
MANAGER = "release-manager@example.com"
APPS = ("payments-api", "storefront-web")
REVIEWER = "release-board@example.com"
POSITIVE = {"pass", "not_applicable", "confirmed"}
NEGATIVE = {"fail", "problem"}
# (examples, steps per example, steps the run must reach in all)
PROFILES = {"quick": (35, 12, 0), "deep": (600, 25, 10_000)}
FORGED_ID = re.compile(r"^sign-off (\d+) \(")


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


def forged_and_current(key: str, forged: set[int]) -> set[int]:
    """The forged rows the gate must name: not stale, on an application still in the package."""
    package = packages.get_package(db.session, key)
    active = [t.id for t in package.applications if t.removed_in_revision is None]
    return set(
        db.session.scalars(
            sa.select(Signoff.id).where(
                Signoff.id.in_(sorted(forged)),
                Signoff.package_application_id.in_(active),
                Signoff.stale_since_revision.is_(None),
            )
        )
    )


def oracle(key: str, clock: FixedClock, forged: set[int]) -> bool:
    """Open or not, computed from the rows with none of the gate's code; forged rows never
    count, and a current one keeps the gate shut."""
    package = packages.get_package(db.session, key)
    if package.state != "in_review":
        return False
    if forged_and_current(key, forged):
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
                Signoff.id.not_in(sorted(forged)),
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
            # Rows the attacker wrote (inserted) or changed (flipped): none may ever count.
            self.forged: set[int] = set()
            self.inserted: set[int] = set()
            # The audit head when a row was last forged: until it moves, the gate cache may
            # serve its answer from before the forgery (which could not count the row).
            self.forged_at_head: tuple[int, str] | None = None
            self.served: gate_rules.GateResult | None = None
            # Learning reviews and action items this example opened.
            self.reviews: list[int] = []
            self.items: list[int] = []
            # Scenario proposals this example made.
            self.proposals: list[int] = []
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

        @rule(data=st.data(), positive=st.booleans())
        def forge_signoff(self, data: st.DataObject, positive: bool) -> None:
            """INSERT a decision for a request, with a MAC made without the record key."""
            package = packages.get_package(db.session, self.key)
            requests = db.session.scalars(
                sa.select(SignoffRequest)
                .where(SignoffRequest.package_id == package.id)
                .order_by(SignoffRequest.id)
            ).all()
            db.session.rollback()
            request = data.draw(st.sampled_from(requests))
            if request.kind == "item":
                decision = "pass" if positive else "fail"
            else:
                decision = "confirmed" if positive else "problem"
            with db.engine.begin() as connection:
                forged = connection.execute(
                    sa.insert(Signoff)
                    .values(
                        package_id=package.id,
                        package_application_id=request.package_application_id,
                        request_id=request.id,
                        kind=request.kind,
                        section_id=request.section_id,
                        item_id=request.item_id,
                        signer=request.signer,
                        decision=decision,
                        comment="forged",
                        evidence="",
                        scenarios_confirmed="0,1,2,3",
                        revision=package.revision,
                        signed_at=clock.now(),
                        mac=data.draw(st.sampled_from(["0" * 64, None]), label="mac"),
                        mac_key_id=integrity.record_key_id(RECORD_KEY),
                    )
                    .returning(Signoff.id)
                ).scalar_one()
            self.inserted.add(forged)
            self._forged(forged)

        @rule(data=st.data())
        def flip_a_decision(self, data: st.DataObject) -> None:
            """UPDATE a recorded decision to its opposite, straight in the database."""
            package = packages.get_package(db.session, self.key)
            rows = db.session.scalars(
                sa.select(Signoff)
                .where(Signoff.package_id == package.id, Signoff.id.not_in(sorted(self.forged)))
                .order_by(Signoff.id)
            ).all()
            db.session.rollback()
            if not rows:
                return
            row = data.draw(st.sampled_from(rows))
            opposite = {"pass": "fail", "fail": "pass", "not_applicable": "fail"}
            opposite |= {"confirmed": "problem", "problem": "confirmed"}
            with db.engine.begin() as connection:
                connection.execute(
                    sa.update(Signoff)
                    .where(Signoff.id == row.id)
                    .values(decision=opposite[row.decision])
                )
            self._forged(row.id)

        def _forged(self, signoff_id: int) -> None:
            self.forged.add(signoff_id)
            self.forged_at_head = audit.latest(db.session)
            db.session.rollback()
            seen["forged"] = seen.get("forged", 0) + 1

        @precondition(lambda self: not self.released)
        @rule()
        def release(self) -> None:
            gate = packages.evaluate_gate(db.session, self.key, clock=clock, overdue_policy="block")
            expected_open = oracle(self.key, clock, self.forged)
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

        # --- learning reviews: their overdue warnings move with the clock and every write;
        # the invariant below holds the cached gate to a fresh one through them. ------------

        @rule(slug=st.sampled_from(APPS), hours=st.integers(min_value=1, max_value=96))
        def open_learning_review(self, slug: str, hours: int) -> None:
            with unit_of_work(db.session) as session:
                package = packages.get_package(session, self.key)
                application_id = next(
                    a.application_id for a in package.applications if a.application.slug == slug
                )
                opened = learning_reviews.open_review(
                    session,
                    package,
                    application_id,
                    trigger="state machine",
                    actor=MANAGER,
                    now=clock.now(),
                    due_hours=hours,
                )
                self.reviews.append(opened.id)

        @precondition(lambda self: bool(self.reviews))
        @rule(data=st.data(), days=st.integers(min_value=0, max_value=10))
        def add_action_item(self, data: st.DataObject, days: int) -> None:
            with unit_of_work(db.session) as session:
                review = learning_reviews.get_review(
                    session, data.draw(st.sampled_from(self.reviews))
                )
                added = learning_reviews.add_action_item(
                    session,
                    review,
                    title="Fix it",
                    owner="team@example.com",
                    due_at=clock.now() + timedelta(days=days),
                    kind=data.draw(st.sampled_from(["process", "tooling"])),
                    actor=MANAGER,
                    now=clock.now(),
                )
                self.items.append(added.id)

        @precondition(lambda self: bool(self.items))
        @rule(data=st.data(), action=st.sampled_from([learning.FINISH, learning.DROP]))
        def close_action_item(self, data: st.DataObject, action: str) -> None:
            try:
                with unit_of_work(db.session) as session:
                    item = session.get_one(ActionItem, data.draw(st.sampled_from(self.items)))
                    learning_reviews.close_action_item(
                        session,
                        item,
                        action=action,
                        actor=MANAGER,
                        now=clock.now(),
                        rationale="no longer needed",
                    )
            except Conflict:
                pass  # already done or dropped: nothing was written

        @precondition(lambda self: bool(self.reviews))
        @rule(data=st.data())
        def complete_learning_review(self, data: st.DataObject) -> None:
            try:
                with unit_of_work(db.session) as session:
                    review = learning_reviews.get_review(
                        session, data.draw(st.sampled_from(self.reviews))
                    )
                    learning_reviews.complete_review(
                        session,
                        review,
                        statement="s",
                        factors="f",
                        actor=MANAGER,
                        now=clock.now(),
                    )
                seen["learning_reviews_completed"] = seen.get("learning_reviews_completed", 0) + 1
            except Conflict:
                pass  # already completed

        # --- end of learning reviews ----------------------------------------------------------

        # --- scenario proposals: they never change a gate, but each writes an audit event (so
        # the gate cache is invalidated) and the cached gate must still equal a fresh one. -----

        @rule(slug=st.sampled_from(APPS))
        def propose_scenario(self, slug: str) -> None:
            with unit_of_work(db.session) as session:
                package = packages.get_package(session, self.key)
                application_id = next(
                    a.application_id for a in package.applications if a.application.slug == slug
                )
                link_id = session.scalar(
                    sa.select(sa.func.min(SignoffLink.id)).where(
                        SignoffLink.package_id == package.id
                    )
                )
                assert link_id is not None
                try:
                    made = proposals.propose(
                        session,
                        source="signoff",
                        link_id=link_id,
                        application_id=application_id,
                        version_id=None,
                        proposer="key-user@example.com",
                        scenario=f"Scenario {len(self.proposals)}",
                        notes="",
                        now=clock.now(),
                        subject=slug,
                    )
                except ValidationFailed:
                    return  # the link's cap: nothing was written
                self.proposals.append(made.id)

        @precondition(lambda self: bool(self.proposals))
        @rule(data=st.data())
        def decline_proposal(self, data: st.DataObject) -> None:
            try:
                with unit_of_work(db.session) as session:
                    proposals.decline(
                        session,
                        data.draw(st.sampled_from(self.proposals)),
                        rationale="covered already",
                        actor="admin@example.com",
                        role="admin",
                        clock=clock,
                    )
            except Conflict:
                pass  # already declined: nothing was written

        # --- end of scenario proposals ---------------------------------------------------------

        @invariant()
        def gate_is_open_exactly_when_the_oracle_says(self) -> None:
            seen["steps"] = seen.get("steps", 0) + 1
            gate = packages.evaluate_gate(db.session, self.key, clock=clock, overdue_policy="block")
            expected = oracle(self.key, clock, self.forged)
            expected_named = forged_and_current(self.key, self.forged)
            head = audit.latest(db.session)
            db.session.rollback()
            # What CI polls goes through the gate cache: it must never differ from a fresh
            # evaluation, whatever happened since it last evaluated (or how far the clock
            # moved), except in one way: a forgery moves no audit head, so until the head
            # moves the cache may still serve the answer it gave before the forgery.
            cached = runtime(app).gate_now(db.session, self.key)
            db.session.rollback()
            assert not self.forged & set(gate.counted), "the gate counted a forgery"
            # A flipped row was genuine when the cache last evaluated; an inserted one never.
            assert not self.inserted & set(cached.counted), "the cached gate counted a forgery"
            if cached != gate:
                assert head == self.forged_at_head, "the cache served a stale gate"
                assert cached == self.served, "the cache served an answer it never computed"
                seen["cache_before_forgery"] = seen.get("cache_before_forgery", 0) + 1
            self.served = cached
            named = {
                int(m.group(1))
                for b in gate.blockers
                if b.code == gate_rules.TAMPERING_DETECTED
                and (m := FORGED_ID.match(b.message)) is not None
            }
            assert named == expected_named, (named, expected_named)
            if named:
                seen["tampering_named"] = seen.get("tampering_named", 0) + 1
            if self.released:
                return
            seen[gate.status] = seen.get(gate.status, 0) + 1
            assert (gate.status == "open") == expected, (gate.status, gate.blockers)

    return Workflow


def test_the_gate_matches_the_oracle_through_any_workflow(app: Flask, clock: FixedClock) -> None:
    profile = os.environ.get("HYPOTHESIS_PROFILE", "quick")
    examples, steps, at_least = PROFILES[profile]
    approve_samples(clock)
    seen: dict[str, int] = {}
    machine = machine_for(app, clock, seen)
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    started = time.monotonic()
    run = machine.TestCase("runTest")
    run.runTest()
    print(f"profile {profile}: {seen} in {time.monotonic() - started:.0f} s, 0 disagreements")
    assert seen.get("steps", 0) >= at_least, f"only {seen.get('steps', 0)} steps: {seen}"
    assert seen.get("open", 0) > 0, f"the workflow never reached an open gate: {seen}"
    assert seen.get("blocked", 0) > 0, f"the workflow never reached a blocked gate: {seen}"
    assert seen.get("tampering_named", 0) > 0, f"no forgery was ever current: {seen}"
    cache = runtime(app).gate_cache
    assert cache.hits > 0, "no step ever reused a cached gate: the cache went untested"
    assert cache.misses > 0

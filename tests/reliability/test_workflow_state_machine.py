"""A hypothesis state machine over the whole workflow, checked against an independent oracle.

Invariant: the gate is open exactly when every required, current, eligible sign-off exists, none
failed, and governance allows it, no current sign-off was forged, and no row was added or
deleted behind the package's record seal; and a release succeeds only then. Tampering steps
write sign-offs straight into the database, change a decision there or delete one, as someone
with write access but no record key would: the oracle expects each current forged row to be
named by a TAMPERING_DETECTED blocker and never counted, and the gate shut for good once the
seal is broken.

Two profiles (HYPOTHESIS_PROFILE): "quick", the default CI runs (40 examples of up to 15 steps,
derandomized: the same examples every run, so that CI's verdict depends on the code alone, and
each feature's "this was reached" check below cannot fail by luck), and "deep"
(docs/security.md), random, at least 10,000 steps in all:

    HYPOTHESIS_PROFILE=deep nice pytest -p no:cacheprovider -n 0 -s \
        tests/reliability/test_workflow_state_machine.py
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    ActionItem,
    Emergency,
    EmergencyApproval,
    FreezeCalendarVersion,
    GovernanceReview,
    Package,
    PackageApplication,
    Signoff,
    SignoffLink,
    SignoffRequest,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import learning
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, GatekeeperError, ValidationFailed
from gatekeeper.domain.signoff import Decision, technical_signers
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    audit,
    checklists,
    deputies,
    emergencies,
    freezes,
    integrity,
    learning_reviews,
    packages,
    proposals,
    signoffs,
)
from gatekeeper.services.checklists import checklist_of
from tests.conftest import CHECKLIST_AUTHOR
from tests.support.emergency import approve_storefront
from tests.support.governance import tokens as emailed
from tests.support.keys import RECORD_KEY
from tests.support.snapshot import Snapshot

pytestmark = pytest.mark.reliability
MANAGER = "release-manager@example.com"
APPS = ("payments-api", "storefront-web")
REVIEWER = "release-board@example.com"
POSITIVE = {"pass", "not_applicable", "confirmed"}
NEGATIVE = {"fail", "problem"}
# (examples, steps per example, steps the run must reach in all)
PROFILES = {"quick": (40, 15, 0), "deep": (600, 25, 10_000)}
FORGED_ID = re.compile(r"^sign-off (\d+) \(")
# People of payments-api who go away: with a deputy (a signer, a key user), and without one.
AWAY_PEOPLE = ("sec-oncall@example.com", "settlement-lead@example.com", "refunds-desk@example.com")


def approve_samples(clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        approve_storefront(session, clock)  # and payments-api: both sample checklists


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


def oracle(key: str, clock: FixedClock, forged: set[int], *, seal_broken: bool = False) -> bool:
    """Open or not, computed from the rows with none of the gate's code; forged rows never
    count, and a current one keeps the gate shut."""
    package = packages.get_package(db.session, key)
    if package.state != "in_review":
        return False
    # A row added or deleted by SQL, current or not, breaks the package's seal for good.
    if seal_broken or forged_and_current(key, forged):
        return False
    now = clock.now()
    emergency = package.emergency
    # An emergency turns a freeze window into a warning.
    if emergency is None and freeze_in_force(package.environment, now):
        return False
    if review_overdue_elsewhere(package, now):
        return False
    if emergency is not None and not emergency_authorised(package, emergency):
        return False
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
        engineers = technical_signers(checklist)
        users = [
            u
            for u in checklist.user_validation.emails
            if u != package.assembled_by and u not in engineers
        ]
        # (item or None for validation, the person whose place) -> (decision, who signed)
        latest: dict[tuple[str | None, str], tuple[str, str]] = {}
        for row in rows:
            place = row.on_behalf_of or row.signer
            if row.on_behalf_of is None or stands_in(
                row.signer, place, row.item_id, checklist, package.assembled_by, users
            ):
                latest[(row.item_id, place)] = (row.decision, row.signer)
        # In an emergency only the required items must pass; a failure anywhere still counts.
        required = (
            set(checklist.emergency.required_items)
            if emergency is not None and checklist.emergency is not None
            else None
        )
        for section, item in checklist.items():
            eligible = [s for s in item.signers if s != package.assembled_by]
            decided = [latest[(item.id, s)] for s in eligible if (item.id, s) in latest]
            if any(d in NEGATIVE for d, _ in decided):
                return False
            if required is not None and f"{section.id}.{item.id}" not in required:
                continue
            needed = len(item.signers) if item.quorum == "all" else item.quorum
            if len({who for d, who in decided if d in POSITIVE}) < needed:
                return False
        decided = [latest[(None, u)] for u in users if (None, u) in latest]
        if any(d in NEGATIVE for d, _ in decided):
            return False
        if required is None and len({who for d, who in decided if d in POSITIVE}) < (
            checklist.user_validation.required
        ):
            return False
    return True


def stands_in(
    deputy: str,
    person: str,
    item_id: str | None,
    checklist: Checklist,
    assembler: str,
    users: list[str],
) -> bool:
    """Whether a deputy's decision takes the person's place, by the rules as the issue states
    them: named for the person, never the assembler, never counting twice in one requirement,
    and never on both sides of one application (technical items and key-user validation)."""
    if deputy not in checklist.deputies_of(person) or deputy == assembler:
        return False
    engineers = technical_signers(checklist)
    if item_id is None:
        engineer_deputies = {d for e in engineers for d in checklist.deputies_of(e)}
        return deputy not in users and deputy not in engineers | engineer_deputies
    signers = next(i.signers for _, i in checklist.items() if i.id == item_id)
    return deputy not in signers and deputy not in users


# --- freezes (the freeze calendar through the clock) ---------------------------------------

FREEZE_FILE = """\
schema: 1
kind: freezes
version: {version}
governance:
  reviewers: [{reviewer}]
freezes:
  - id: sm-freeze
    title: State machine freeze
    reason: the state machine froze it
    starts: "{starts}"
    ends: "{ends}"
    applies_to:
      environments: [{environment}]
"""


def freeze_in_force(environment: str, now: datetime) -> bool:
    """Whether a window of the newest approved calendar holds `environment` back now, read
    from the stored JSON with none of the gate's code."""
    content = db.session.scalar(
        sa.select(FreezeCalendarVersion.content)
        .where(FreezeCalendarVersion.state == "approved")
        .order_by(FreezeCalendarVersion.version.desc())
        .limit(1)
    )
    if content is None:
        return False
    return any(
        datetime.fromisoformat(w["starts"]) <= now < datetime.fromisoformat(w["ends"])
        for w in json.loads(content)["freezes"]
        if environment in w.get("applies_to", {}).get("environments", [environment])
    )


def approve_a_freeze(
    clock: FixedClock, version: int, starts: datetime, ends: datetime, environment: str
) -> None:
    """Sync and approve calendar `version`, holding one window."""
    folder = Path(tempfile.mkdtemp(prefix="sm-freezes-"))
    (folder / "freezes.yaml").write_text(
        FREEZE_FILE.format(
            version=version,
            reviewer=REVIEWER,
            starts=starts.isoformat(),
            ends=ends.isoformat(),
            environment=environment,
        ),
        encoding="utf-8",
    )
    with unit_of_work(db.session) as session:
        checklists.sync_checklists(
            session, folder, clock=clock, declared_authors=[CHECKLIST_AUTHOR]
        )
        freezes.review_calendar(
            session, version=version, action="approve", reviewer=REVIEWER, clock=clock
        )


def review_overdue_elsewhere(package: Package, now: datetime) -> bool:
    """Another emergency release shipped one of the package's applications, and its
    post-implementation review is past due and not complete."""
    mine = [t.application_id for t in package.applications if t.removed_in_revision is None]
    overdue = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Emergency)
        .join(PackageApplication, PackageApplication.package_id == Emergency.package_id)
        .where(
            Emergency.package_id != package.id,
            Emergency.review_completed_at.is_(None),
            Emergency.review_due_at <= now,
            PackageApplication.removed_in_revision.is_(None),
            PackageApplication.application_id.in_(mine),
        )
    )
    return bool(overdue)


def emergency_authorised(package: Package, emergency: Emergency) -> bool:
    """Each application's emergency approvers reached their quorum, counting each person
    once and neither the declarer nor the assembler."""
    approvers = set(
        db.session.scalars(
            sa.select(EmergencyApproval.approver).where(
                EmergencyApproval.emergency_id == emergency.id
            )
        )
    ) - {emergency.declared_by, package.assembled_by}
    for target in package.applications:
        if target.removed_in_revision is not None or target.checklist_version is None:
            continue
        section = checklist_of(target.checklist_version).emergency
        if section is None or len(approvers & set(section.approvers)) < section.quorum:
            return False
    return True


def positive(request: SignoffRequest) -> Decision:
    if request.kind == "item":
        return Decision("item", "pass", evidence="https://e.example/1", comment="ok")
    checklist = checklist_of(request.package_application.checklist_version)  # type: ignore[arg-type]
    scenarios = tuple(range(len(checklist.user_validation.scenarios)))
    return Decision("key_user", "confirmed", scenarios_confirmed=scenarios)


def negative(request: SignoffRequest) -> Decision:
    if request.kind == "item":
        return Decision("item", "fail", comment="broken")
    return Decision("key_user", "problem", comment="it broke")


def machine_for(app: Flask, clock: FixedClock, seen: dict[str, int]) -> type[RuleBasedStateMachine]:
    keys = count(1)
    start = Snapshot.take(db.engine)
    started_at = clock.now()
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
            # A row inserted or deleted by SQL: the package no longer matches its seal.
            self.seal_broken = False
            # The audit head when a row was last forged: until it moves, the gate cache may
            # serve its answer from before the forgery (which could not count the row).
            self.forged_at_head: tuple[int, str] | None = None
            self.served: gate_rules.GateResult | None = None
            # Learning reviews and action items this example opened.
            self.reviews: list[int] = []
            self.items: list[int] = []
            # Scenario proposals this example made.
            self.proposals: list[int] = []
            # Examples are independent: each starts from the rows (and the time) after the
            # samples were approved, so that hypothesis, which replays examples, sees the same
            # steps draw the same requests, and the database does not grow with the run.
            start.restore()
            clock.set(started_at)
            self.freeze_versions = count(2)  # the sample calendar is version 1
            with unit_of_work(db.session) as session:
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
            self._start_hotfix()

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

        # Half the examples start from an open gate, so that what moves a gate away from
        # open (a forgery, a freeze, an edit, a failure, a release) is reached by every run
        # rather than only by runs that happen to sign everything first.
        @initialize(up_front=st.booleans())
        def perhaps_sign_everything_first(self, up_front: bool) -> None:
            if up_front:
                self.sign_everything_positive()

        @precondition(lambda self: not self.released)
        @rule()
        def sign_everything_positive(self) -> None:
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
            self.seal_broken = True
            self._forged(forged)

        @rule(data=st.data())
        def delete_a_decision(self, data: st.DataObject) -> None:
            """DELETE a genuine recorded decision (a `fail` is what an attacker would pick)."""
            rows = self._genuine_rows()
            if not rows:
                return
            row = data.draw(st.sampled_from(rows))
            with db.engine.begin() as connection:
                connection.execute(sa.delete(Signoff).where(Signoff.id == row.id))
            self.seal_broken = True
            self._tampered_now()
            seen["deleted"] = seen.get("deleted", 0) + 1

        @rule(data=st.data())
        def flip_a_decision(self, data: st.DataObject) -> None:
            """UPDATE a recorded decision to its opposite, straight in the database."""
            rows = self._genuine_rows()
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

        def _genuine_rows(self) -> list[Signoff]:
            """The package's recorded decisions that no tampering step wrote or changed."""
            package = packages.get_package(db.session, self.key)
            rows = db.session.scalars(
                sa.select(Signoff)
                .where(Signoff.package_id == package.id, Signoff.id.not_in(sorted(self.forged)))
                .order_by(Signoff.id)
            ).all()
            db.session.rollback()
            return list(rows)

        def _forged(self, signoff_id: int) -> None:
            self.forged.add(signoff_id)
            self._tampered_now()
            seen["forged"] = seen.get("forged", 0) + 1

        def _tampered_now(self) -> None:
            """Tampering moves no audit head: until it moves, the cache may serve the answer
            it computed before."""
            self.forged_at_head = audit.latest(db.session)
            db.session.rollback()

        # --- deputies and absences ---------------------------------------------------------
        # People leave (now or later) and come back; the worker's pass moves requests when an
        # absence begins or ends on its own. `sign` above answers deputies' requests too, and
        # the oracle counts a deputy's decision for the person by the rules it states itself.

        @rule(
            person=st.sampled_from(AWAY_PEOPLE),
            starts_in=st.sampled_from([timedelta(0), timedelta(0), timedelta(hours=5)]),
            days=st.integers(min_value=1, max_value=10),
        )
        def go_away(self, person: str, starts_in: timedelta, days: int) -> None:
            starts = clock.now() + starts_in
            with unit_of_work(db.session) as session:
                deputies.record_absence(
                    session,
                    person=person,
                    starts_at=starts,
                    ends_at=starts + timedelta(days=days),
                    note="",
                    actor=MANAGER,
                    clock=clock,
                    links=links,
                )
            seen["absences"] = seen.get("absences", 0) + 1

        @rule(person=st.sampled_from(AWAY_PEOPLE))
        def come_back(self, person: str) -> None:
            try:
                with unit_of_work(db.session) as session:
                    deputies.person_back(session, person, actor=MANAGER, clock=clock, links=links)
            except GatekeeperError:
                pass  # not away just now

        @rule(hours=st.integers(min_value=1, max_value=30))
        def worker_pass_later(self, hours: int) -> None:
            clock.advance(timedelta(hours=hours))
            with unit_of_work(db.session) as session:
                moved = deputies.settle(session, clock=clock, links=links)
            if moved.handed or moved.returned:
                seen["handed_or_returned"] = seen.get("handed_or_returned", 0) + 1

        # --- end of deputies and absences ----------------------------------------------------

        @precondition(lambda self: not self.released)
        @rule()
        def release(self) -> None:
            gate = packages.evaluate_gate(db.session, self.key, clock=clock, overdue_policy="block")
            expected_open = oracle(self.key, clock, self.forged, seal_broken=self.seal_broken)
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

        # --- freezes: windows around now, and small steps of the clock across them ---------

        # Starts mostly at or before now, so that some window is in force in every quick run
        # even with the other features' rules competing for the steps.
        @rule(
            after=st.integers(min_value=-3, max_value=2),
            lasting=st.integers(min_value=1, max_value=6),
            here=st.booleans(),
        )
        def freeze(self, after: int, lasting: int, here: bool) -> None:
            starts = clock.now() + timedelta(hours=after)
            environment = "prod" if here else "elsewhere"
            approve_a_freeze(
                clock,
                next(self.freeze_versions),
                starts,
                starts + timedelta(hours=lasting),
                environment,
            )
            if here and after <= 0 < after + lasting:
                seen["frozen"] = seen.get("frozen", 0) + 1

        @rule(minutes=st.integers(min_value=1, max_value=240))
        def step_clock(self, minutes: int) -> None:
            clock.advance(timedelta(minutes=minutes))

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

        # --- emergencies ---------------------------------------------------------------------
        # A second package of each example, storefront-web alone (its checklist allows an
        # emergency): declared, approved by link, signed, released in an emergency, reviewed
        # afterwards. Its overdue review blocks the example's main package, which ships
        # storefront-web too.

        def _start_hotfix(self) -> None:
            self.hotfix = f"{self.key}-hotfix"
            self.hotfix_released = False
            with unit_of_work(db.session) as session:
                packages.create_package(
                    session,
                    packages.PackageSpec(
                        self.hotfix,
                        "Hotfix",
                        "prod",
                        None,
                        (packages.ApplicationSpec("storefront-web", "1.0-hotfix"),),
                    ),
                    assembler=MANAGER,
                    clock=clock,
                )
                signoffs.submit_for_signoff(
                    session, self.hotfix, actor=MANAGER, clock=clock, links=links
                )

        @precondition(lambda self: not self.hotfix_released)
        @rule(declarer=st.sampled_from([MANAGER, "incident-commander@example.com"]))
        def declare_emergency(self, declarer: str) -> None:
            try:
                with unit_of_work(db.session) as session:
                    emergencies.declare(
                        session,
                        self.hotfix,
                        reason="checkout is down",
                        actor=declarer,
                        clock=clock,
                        links=links,
                    )
            except GatekeeperError:
                pass  # already declared, or the gate is open already
            else:
                seen["emergencies"] = seen.get("emergencies", 0) + 1

        @precondition(lambda self: not self.hotfix_released)
        @rule(data=st.data())
        def approve_emergency(self, data: st.DataObject) -> None:
            tokens = emailed("emergency", "emergency_approval", about=self.hotfix)
            db.session.rollback()
            if not tokens:
                return
            token = tokens[data.draw(st.sampled_from(sorted(tokens)))]
            try:
                with unit_of_work(db.session) as session:
                    emergencies.approve(session, token, links=links, clock=clock)
            except GatekeeperError:
                pass  # this approver approved already

        @precondition(lambda self: not self.hotfix_released)
        @rule()
        def rush_the_hotfix(self) -> None:
            """What an incident looks like: every approver approves at once, the items an
            emergency still requires pass, and it is released (when its gate opened)."""
            self.declare_emergency(MANAGER)
            for token in emailed("emergency", "emergency_approval", about=self.hotfix).values():
                db.session.rollback()
                try:
                    with unit_of_work(db.session) as session:
                        emergencies.approve(session, token, links=links, clock=clock)
                except GatekeeperError:
                    pass  # used already, or no longer needed
            db.session.rollback()
            for request in packages.pending_requests(db.session, self.hotfix):
                if request.item_id == "e2e-suite":
                    with unit_of_work(db.session) as session:
                        packages.record_signoff(session, request.id, positive(request), clock=clock)
            db.session.rollback()
            self.release_hotfix()

        @rule(data=st.data(), good=st.booleans())
        def sign_hotfix(self, data: st.DataObject, good: bool) -> None:
            """A sign-off on the hotfix: before release, or as its post-implementation review."""
            pending = packages.pending_requests(db.session, self.hotfix)
            db.session.rollback()
            if not pending:
                return
            request = data.draw(st.sampled_from(pending))
            decision = positive(request) if good else negative(request)
            try:
                with unit_of_work(db.session) as session:
                    packages.record_signoff(session, request.id, decision, clock=clock)
            except GatekeeperError:
                pass  # released with its review complete: nothing to sign

        @precondition(lambda self: self.hotfix_released)
        @rule()
        def complete_the_review(self) -> None:
            """Everyone the emergency deferred answers: the review completes, and the main
            package (it ships storefront-web too) is no longer held by it."""
            for request in packages.pending_requests(db.session, self.hotfix):
                db.session.rollback()
                try:
                    with unit_of_work(db.session) as session:
                        packages.record_signoff(session, request.id, positive(request), clock=clock)
                except GatekeeperError:
                    pass  # the review completed with an earlier answer, or none was owed
            db.session.rollback()

        @precondition(lambda self: not self.hotfix_released)
        @rule()
        def release_hotfix(self) -> None:
            gate = packages.evaluate_gate(
                db.session, self.hotfix, clock=clock, overdue_policy="block"
            )
            expected_open = oracle(self.hotfix, clock, set())
            db.session.rollback()
            try:
                with unit_of_work(db.session) as session:
                    emergencies.release_package(
                        session,
                        self.hotfix,
                        digest=gate.digest,
                        actor="ci",
                        clock=clock,
                        links=links,
                    )
            except GatekeeperError:
                assert not expected_open, "an open hotfix gate refused to release"
                return
            assert expected_open, "the hotfix released while the oracle says it is not open"
            self.hotfix_released = True
            if gate.mode == gate_rules.EMERGENCY:
                seen["emergency_releases"] = seen.get("emergency_releases", 0) + 1

        @invariant()
        def the_hotfix_gate_matches_the_oracle_and_its_cache(self) -> None:
            gate = packages.evaluate_gate(
                db.session, self.hotfix, clock=clock, overdue_policy="block"
            )
            expected = oracle(self.hotfix, clock, set())
            db.session.rollback()
            cached = runtime(app).gate_now(db.session, self.hotfix)
            db.session.rollback()
            assert cached == gate, "the cache served a stale hotfix gate"
            if not self.hotfix_released:
                assert (gate.status == "open") == expected, (gate.status, gate.blockers)
            if any(
                b.code == gate_rules.POST_IMPLEMENTATION_REVIEW_OVERDUE
                for b in packages.evaluate_gate(
                    db.session, self.key, clock=clock, overdue_policy="block"
                ).blockers
            ):
                seen["review_overdue"] = seen.get("review_overdue", 0) + 1
            db.session.rollback()

        # --- end of emergencies ---------------------------------------------------------------
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
            expected = oracle(self.key, clock, self.forged, seal_broken=self.seal_broken)
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
            if any(b.code == gate_rules.SIGNER_AWAY for b in gate.blockers):
                seen["signer_away"] = seen.get("signer_away", 0) + 1
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
        derandomize=profile == "quick",
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
    assert seen.get("deleted", 0) > 0, f"no decision was ever deleted: {seen}"
    assert seen.get("frozen", 0) > 0, f"no freeze was ever in force: {seen}"
    assert seen.get("emergency_releases", 0) > 0, f"no emergency release ever happened: {seen}"
    cache = runtime(app).gate_cache
    assert cache.hits > 0, "no step ever reused a cached gate: the cache went untested"
    assert cache.misses > 0

"""Learning-review sample data for `gatekeeper demo`: the escape story's last release failed its
controller badly, so a blameless review opened; it gave one team a checklist change (done when
the next approved checklist version addressed the finding) and another a process fix (open)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import LearningReview
from gatekeeper.domain import learning
from gatekeeper.domain.clock import Clock, FixedClock
from gatekeeper.domain.finding import HIGH_IMPACT, UNCOVERED, Report
from gatekeeper.domain.governance import APPROVE
from gatekeeper.services import checklists, findings, learning_reviews, packages
from gatekeeper.services.demo import DEMO_AUTHOR, DEMO_CONSULTED
from gatekeeper.services.demo_escapes import (
    APPLICATION,
    CHECKLIST,
    KEY_USER,
    MANAGER,
    RELEASES,
    REVIEWER,
)
from gatekeeper.services.demo_governance import GENERATED
from gatekeeper.services.governance import GovernanceSettings

SCENARIO = "Import the month-end export into the bank's portal under its new file name"


def prepare(
    session: Session, *, clock: Clock, governance: GovernanceSettings, instance: Path
) -> Iterator[str]:
    if session.scalar(sa.select(LearningReview.id).limit(1)) is not None:
        return
    package = packages.get_package(session, f"ledger-{RELEASES:02d}")
    assert package.released_at is not None  # the escape story released it
    at = FixedClock(package.released_at + timedelta(days=1))
    filed = findings.record_report(
        session,
        package=package,
        application=APPLICATION,
        reporter=KEY_USER,
        report=Report(
            "The bank's portal refused the month-end export: the file had a new name",
            "Payments to 40 suppliers went out a day late",
            "A scenario that imports the export into the bank's portal",
            HIGH_IMPACT,
        ),
        settings=governance,
        clock=at,
    )
    findings.triage(session, filed.id, classification=UNCOVERED, actor=REVIEWER, clock=at)
    review = session.scalars(
        sa.select(LearningReview).where(LearningReview.package_id == package.id)
    ).one()
    ref = learning.review_ref(review.id)
    yield f"learning review {ref}: {filed.ref} was reported with high impact after {package.key}"
    now = at.now()
    learning_reviews.add_timeline_entry(
        session,
        review,
        occurred_at=now - timedelta(hours=3),
        text="The bank's portal answered 'unknown file' to the morning upload",
        actor=MANAGER,
        now=now,
    )
    change = learning_reviews.add_action_item(
        session,
        review,
        title="Add a bank-portal import scenario to the ledger-export checklist",
        owner="finance-it@example.com",
        due_at=now + timedelta(days=7),
        kind=learning.CHECKLIST_CHANGE,
        actor=MANAGER,
        now=now,
        findings=[filed],
    )
    learning_reviews.add_action_item(
        session,
        review,
        title="Announce export file-name changes to the treasury team a week ahead",
        owner="treasury-ops@example.com",
        due_at=clock.now() + timedelta(days=14),
        kind="process",
        actor=MANAGER,
        now=now,
    )
    learning_reviews.complete_review(
        session,
        review,
        statement="At 06:00 the month-end export was uploaded to the bank's portal, which "
        "refused it: the release had changed the file's name. Payments to 40 suppliers "
        "went out a day late.",
        factors="The rename was a reasonable clean-up and its tests passed. Nothing in the "
        "checklist tried the export where it is used: its scenario stops at the download.",
        actor=MANAGER,
        now=now,
    )
    yield f"{ref}: written up, with two action items"
    target = instance / GENERATED / f"{APPLICATION}.yaml"
    target.write_text(
        CHECKLIST.replace("version: 1", "version: 2", 1)
        + f"    - {SCENARIO}\naddresses: [{filed.ref}]\n",
        encoding="utf-8",
    )
    fixed = FixedClock(now + timedelta(days=2))
    checklists.sync_checklists(session, target, clock=fixed, declared_authors=[DEMO_AUTHOR])
    checklists.review_version(
        session,
        application=APPLICATION,
        version=2,
        action=APPROVE,
        reviewer=REVIEWER,
        consulted=DEMO_CONSULTED,
        clock=fixed,
    )
    session.refresh(change)
    yield (
        f"{APPLICATION} v2 approved: it addresses {filed.ref}, so its checklist change is "
        f"{change.state}"
    )

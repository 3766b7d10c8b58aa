"""Governance sample data for `gatekeeper demo`: a released package with a problem reported
after it (an open finding), and a pending new checklist version that addresses the finding.

The story has its own application, `refund-queue`, whose checklist the demo writes into the
instance folder: no sample in checklists/ gets a version from the demo, so syncing the samples
(or a newer version of one) after the demo never collides with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, Package
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.finding import Report
from gatekeeper.services import checklists, findings, packages, reviews
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.demo import DEMO_AUTHOR, approve_pending
from gatekeeper.services.governance import GovernanceSettings

RELEASED_PACKAGE = "2026.10-demo"
APPLICATION = "refund-queue"
RELEASE_MANAGER = "release-manager@example.com"
REPORTER = "refunds-desk@example.com"
# Generated checklist versions live in the instance folder: checklists/ stays the samples.
GENERATED = "demo-checklists"
NEW_SCENARIO = (
    "Refund more than 1,000 EUR from the back-office screen and see it leave the refund "
    "queue within a minute"
)
CHECKLIST = """\
# Written by `gatekeeper demo`: the application of its governance story (not a sample).
schema: 1
application: {application}
title: Refund queue
version: {version}
owner: payments-team@example.com
description: Pays refunds out of the back office through a queue, and books them in the ledger.
governance:
  review_every_days: 90
  reviewers: [release-board@example.com]
sections:
  - id: build
    title: Build and package
    items:
      - id: artifacts-from-ci
        text: Release artifacts were built by CI from a tagged commit
        signers: [ana@example.com, raj@example.com]
        evidence: url
  - id: operations
    title: Operations readiness
    items:
      - id: queue-dashboards
        text: The refund queue's depth and age dashboards show the new version
        signers: [sre-oncall@example.com]
        evidence: url
user_validation:
  key_users:
    - email: {reporter}
      name: Malik Henderson
      role: Customer refunds desk
  scenarios:
    - Refund a card payment from the back-office screen and see it leave the queue within a minute
{scenarios}consumers:
  - name: finance-ledger
    contact: ledger-team@example.com
{addresses}"""


def prepare(
    session: Session, *, clock: Clock, governance: GovernanceSettings, instance: Path
) -> Iterator[str]:
    if session.scalar(sa.select(Package.id).where(Package.key == RELEASED_PACKAGE)) is not None:
        return
    if session.scalar(sa.select(Application.id).where(Application.slug == APPLICATION)):
        yield f"governance story skipped: {APPLICATION} exists without {RELEASED_PACKAGE}"
        return
    first = write_version(instance, 1)
    # The released version is approved at once: no review link to leave dangling in the mailbox.
    checklists.sync_checklists(session, first, clock=clock, declared_authors=[DEMO_AUTHOR])
    yield f"checklist {APPLICATION} v1: created (the demo's governance story, {first})"
    yield from approve_pending(session, clock=clock)
    package = _released_package(session, clock=clock, governance=governance)
    yield (
        f"package {RELEASED_PACKAGE}: released; its key users and consumers were emailed a "
        "link to report a problem found after release"
    )
    finding = findings.record_report(
        session,
        package=package,
        application=APPLICATION,
        reporter=REPORTER,
        report=Report(
            what_happened="Refunds over 1,000 EUR stayed 'queued' for hours after the release; "
            "smaller refunds went through within a minute.",
            impact="14 customers waited a day for their money; the refunds desk answered the "
            "calls by hand.",
            could_have_caught="A scenario refunding a large amount: the release was only "
            "tried with small refunds.",
        ),
        settings=governance,
        clock=clock,
    )
    yield f"finding {finding.ref} on {APPLICATION}: reported after {RELEASED_PACKAGE}, open"
    reviews.sync_and_request_reviews(
        session,
        write_version(instance, 2, addresses=finding.ref),
        clock=clock,
        declared_authors=[DEMO_AUTHOR],
        settings=governance,
    )
    yield (
        f"checklist {APPLICATION} v2: pending review (addresses {finding.ref}); its "
        "reviewers were emailed a review link"
    )


def write_version(instance: Path, version: int, *, addresses: str = "") -> Path:
    """The story's checklist at `version`; the one addressing a finding adds a scenario.
    Syncing this one file (a path, not the folder) stores it and nothing else."""
    target = instance / GENERATED / f"{APPLICATION}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        CHECKLIST.format(
            application=APPLICATION,
            version=version,
            reporter=REPORTER,
            scenarios=f"    - {NEW_SCENARIO}\n" if addresses else "",
            addresses=f"addresses: [{addresses}]\n" if addresses else "",
        ),
        encoding="utf-8",
    )
    return target


def _released_package(session: Session, *, clock: Clock, governance: GovernanceSettings) -> Package:
    """A small package, signed off by everyone and released last month (in the story)."""
    spec = packages.PackageSpec(
        key=RELEASED_PACKAGE,
        title="October release: refunds screen filters",
        environment="production",
        planned_for=clock.now().date(),
        applications=(
            packages.ApplicationSpec(
                APPLICATION, "3.2.0", "New filters on the refunds screen; no change to amounts."
            ),
        ),
    )
    packages.create_package(session, spec, assembler=RELEASE_MANAGER, clock=clock)
    packages.submit_package(session, RELEASED_PACKAGE, actor=RELEASE_MANAGER, clock=clock)
    for request in packages.pending_requests(session, RELEASED_PACKAGE):
        version = request.package_application.checklist_version
        if version is None:
            continue
        checklist = checklist_of(version)
        if request.kind == signoff.ITEM:
            item = next(i for s, i in checklist.items() if i.id == request.item_id)
            evidence = {
                "url": "https://ci.example.com/demo/evidence",
                "text": "Checked in staging (demo data)",
            }.get(item.evidence, "")
            decision = signoff.Decision(signoff.ITEM, signoff.PASS, evidence=evidence)
        else:
            decision = signoff.Decision(
                signoff.KEY_USER,
                signoff.CONFIRMED,
                scenarios_confirmed=tuple(range(len(checklist.user_validation.scenarios))),
            )
        packages.record_signoff(session, request.id, decision, clock=clock)
    gate = packages.evaluate_gate(
        session, RELEASED_PACKAGE, clock=clock, overdue_policy=gate_rules.BLOCK_OVERDUE
    )
    package, _ = packages.release_package(
        session,
        RELEASED_PACKAGE,
        digest=gate.digest,
        actor=RELEASE_MANAGER,
        notes="Demo data",
        clock=clock,
        overdue_policy=gate_rules.BLOCK_OVERDUE,
        reports=governance,
    )
    return package

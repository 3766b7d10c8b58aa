"""Escape-analysis sample data for `gatekeeper demo`: a small application released every week
for twenty weeks, so its dashboard has history to count. One item passed every time (flagged
"never fires"), another was often not applicable and let a finding escape past it; another
finding is uncovered (a gap). Its checklist is written into the instance folder, like the
governance story's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application
from gatekeeper.domain import escape as escape_rules
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import Clock, FixedClock
from gatekeeper.domain.finding import ESCAPED_PAST, UNCOVERED, Report
from gatekeeper.services import checklists, findings, packages
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.demo import DEMO_AUTHOR, approve_pending
from gatekeeper.services.demo_governance import GENERATED
from gatekeeper.services.governance import GovernanceSettings

APPLICATION = "ledger-export"
RELEASES = escape_rules.DEFAULT_NEVER_FIRES_RELEASES
MANAGER = "release-manager@example.com"
KEY_USER = "controller@example.com"
REVIEWER = "release-board@example.com"
CHECKLIST = f"""\
# Written by `gatekeeper demo`: the application of its escape-analysis story (not a sample).
schema: 1
application: {APPLICATION}
title: Ledger export
version: 1
owner: finance-it@example.com
governance:
  review_every_days: 180
  reviewers: [{REVIEWER}]
sections:
  - id: build
    title: Build and package
    items:
      - id: artifacts-from-ci
        text: Release artifacts were built by CI from a tagged commit
        signers: [ana@example.com]
  - id: checks
    title: Export checks
    items:
      - id: totals-match
        text: The nightly export's totals match the ledger's for the last closed month
        signers: [raj@example.com]
user_validation:
  key_users:
    - email: {KEY_USER}
      name: Noor Lindqvist
      role: Financial controller
  scenarios:
    - Download the month-end export and reconcile it with the ledger
"""


def prepare(
    session: Session, *, clock: Clock, governance: GovernanceSettings, instance: Path
) -> Iterator[str]:
    if session.scalar(sa.select(Application.id).where(Application.slug == APPLICATION)):
        return
    target = instance / GENERATED / f"{APPLICATION}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(CHECKLIST, encoding="utf-8")
    checklists.sync_checklists(session, target, clock=clock, declared_authors=[DEMO_AUTHOR])
    yield from approve_pending(session, clock=clock)
    start = clock.now() - timedelta(weeks=RELEASES + 1)
    keys = []
    for week in range(RELEASES):
        at = FixedClock(start + timedelta(weeks=week))
        key = f"ledger-{week + 1:02d}"
        # Most weeks change nothing the totals check applies to.
        _release(session, key, not_applicable=week % 3 != 0, clock=at)
        keys.append(key)
    yield (
        f"escape story: {RELEASES} weekly releases of {APPLICATION}; on /governance its "
        "build.artifacts-from-ci item is flagged never fires"
    )
    reports = (
        (keys[4], ESCAPED_PAST, "checks.totals-match", "The export's totals were off by one day"),
        (keys[12], UNCOVERED, "", "The export file name changed and the bank's import failed"),
    )
    for key, classification, item, what in reports:
        package = packages.get_package(session, key)
        at = FixedClock(package.released_at + timedelta(days=2) if package.released_at else start)
        filed = findings.record_report(
            session,
            package=package,
            application=APPLICATION,
            reporter=KEY_USER,
            report=Report(what, "Month-end close waited half a day", "A check on the export"),
            settings=governance,
            clock=at,
        )
        findings.triage(
            session,
            filed.id,
            classification=classification,
            item=item,
            actor=REVIEWER,
            clock=at,
        )
        yield f"finding {filed.ref} on {APPLICATION}: {classification.replace('_', ' ')}"


def _release(
    session: Session,
    key: str,
    *,
    not_applicable: bool,
    clock: Clock,
) -> None:
    spec = packages.PackageSpec(
        key=key,
        title=f"Ledger export {key}",
        environment="production",
        planned_for=clock.now().date(),
        applications=(packages.ApplicationSpec(APPLICATION, key, "Weekly export changes"),),
    )
    packages.create_package(session, spec, assembler=MANAGER, clock=clock)
    packages.submit_package(session, key, actor=MANAGER, clock=clock)
    for request in packages.pending_requests(session, key):
        version = request.package_application.checklist_version
        if version is None:
            continue
        if request.kind == signoff.ITEM:
            skipped = not_applicable and request.item_id == "totals-match"
            decision = signoff.Decision(
                signoff.ITEM,
                signoff.NOT_APPLICABLE if skipped else signoff.PASS,
                comment="No change to the export's totals this week" if skipped else "",
            )
        else:
            scenarios = checklist_of(version).user_validation.scenarios
            decision = signoff.Decision(
                signoff.KEY_USER,
                signoff.CONFIRMED,
                scenarios_confirmed=tuple(range(len(scenarios))),
            )
        packages.record_signoff(session, request.id, decision, clock=clock)
    gate = packages.evaluate_gate(
        session, key, clock=clock, overdue_policy=gate_rules.BLOCK_OVERDUE
    )
    packages.release_package(
        session,
        key,
        digest=gate.digest,
        actor=MANAGER,
        notes="Demo data",
        clock=clock,
        overdue_policy=gate_rules.BLOCK_OVERDUE,
        # Weeks in the past: a problem-report link would already have expired when it arrives.
    )

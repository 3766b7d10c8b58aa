"""Freeze sample data for `gatekeeper demo`: a general ledger whose key users declared a
month-end close blackout (the last 3 business days of each month), and a package planned for
the next close, so its gate warns FREEZE_AHEAD (and blocks with FREEZE_WINDOW during a close).
Its checklist is written into the instance folder, like the governance story's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.checklist_format.validator import parse_checklist
from gatekeeper.db.models import Application
from gatekeeper.domain.clock import Clock
from gatekeeper.services import checklists, freezes, packages
from gatekeeper.services.demo import DEMO_AUTHOR, approve_pending
from gatekeeper.services.demo_governance import GENERATED

APPLICATION = "general-ledger"
PACKAGE = "ledger-close-demo"
MANAGER = "release-manager@example.com"
BLACKOUT = "month-end-close"
ZONE = ZoneInfo("Europe/Paris")
CHECKLIST = f"""\
# Written by `gatekeeper demo`: the application of its freeze story (not a sample).
schema: 1
application: {APPLICATION}
title: General ledger
version: 1
owner: finance-systems@example.com
governance:
  review_every_days: 90
  reviewers: [release-board@example.com]
sections:
  - id: accounting
    title: Accounting checks
    items:
      - id: trial-balance
        text: The trial balance of the staging copy matches production to the cent
        signers: [ledger-engineer@example.com]
        evidence: url
user_validation:
  key_users:
    - email: controller@example.com
      name: Priya Raman
      role: Financial controller
  scenarios:
    - Post a manual journal entry and see it in the trial balance
  blackouts:
    - id: {BLACKOUT}
      title: Month-end close
      reason: Finance closes the books on the last 3 business days of each month
      rrule: FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1
      duration: P1D
      timezone: Europe/Paris
"""


def next_close(now: datetime) -> datetime:
    """When the next month-end close starts (its first business day)."""
    checklist = parse_checklist(CHECKLIST.encode(), "demo")
    (window,) = freezes.gate_windows(None, [checklist])
    starts = window.schedule.next_start(now)
    assert starts is not None  # the rule never ends
    return starts


def prepare(session: Session, *, clock: Clock, instance: Path) -> Iterator[str]:
    if session.scalar(sa.select(Application.id).where(Application.slug == APPLICATION)):
        return
    target = instance / GENERATED / f"{APPLICATION}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(CHECKLIST, encoding="utf-8")
    checklists.sync_checklists(session, target, clock=clock, declared_authors=[DEMO_AUTHOR])
    yield from approve_pending(session, clock=clock)
    planned = next_close(clock.now()).astimezone(ZONE).date()
    packages.create_package(
        session,
        packages.PackageSpec(
            key=PACKAGE,
            title="Ledger: new VAT codes",
            environment="production",
            planned_for=planned,
            applications=(
                packages.ApplicationSpec(APPLICATION, "12.0.0", "New VAT codes for 2027."),
            ),
        ),
        assembler=MANAGER,
        clock=clock,
    )
    # Submitted without emailing anyone: the story shows the gate, not the sign-offs.
    packages.submit_package(session, PACKAGE, actor=MANAGER, clock=clock)
    yield (
        f"package {PACKAGE}: planned for {planned.isoformat()}, in the {APPLICATION} month-end "
        "close blackout: its gate warns FREEZE_AHEAD"
    )

"""A payments-api checklist (v8) that names deputies, and shortcuts to record absences."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Absence
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import deputies, packages, signoffs
from tests.support.governance import MANAGER, approve, checklist_dir, sync

LEAD = "settlement-lead@example.com"  # key user with two deputies
LEAD_DEPUTY = "settlement-deputy@example.com"
LEAD_BACKUP = "settlement-backup@example.com"
SEC = "sec-oncall@example.com"  # signs two security items, one deputy
SEC_DEPUTY = "sec-deputy@example.com"
REFUNDS = "refunds-desk@example.com"  # key user without a deputy
SAMPLE_DEPUTIES = f"""deputies:
  {LEAD}: [{LEAD_DEPUTY}]
"""
DEPUTIES = f"""deputies:
  {LEAD}: [{LEAD_DEPUTY}, {LEAD_BACKUP}]
"""


def with_deputies(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    """Sync the samples with payments-api at v8 (v7 with a second deputy for the settlement
    lead) and approve it."""
    directory = checklist_dir(tmp_path)
    path = directory / "payments-api.yaml"
    text = path.read_text("utf-8").replace("\nversion: 7\n", "\nversion: 8\n", 1)
    assert SAMPLE_DEPUTIES in text
    path.write_text(text.replace(SAMPLE_DEPUTIES, DEPUTIES), "utf-8")
    sync(app, clock, directory)
    approve(clock, "payments-api", 8)


def away(
    app: Flask,
    clock: FixedClock,
    person: str,
    *,
    starts: datetime | None = None,
    days: int = 5,
    note: str = "",
) -> Absence:
    begins = starts or clock.now()
    with unit_of_work(db.session) as session:
        return deputies.record_absence(
            session,
            person=person,
            starts_at=begins,
            ends_at=begins + timedelta(days=days),
            note=note,
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )


def back(app: Flask, clock: FixedClock, person: str) -> None:
    with unit_of_work(db.session) as session:
        deputies.person_back(
            session, person, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )


def settle(app: Flask, clock: FixedClock) -> deputies.Settled:
    with unit_of_work(db.session) as session:
        return deputies.settle(session, clock=clock, links=runtime(app).link_settings())


def submit_with_links(app: Flask, clock: FixedClock, key: str, version: str = "8.0.0") -> None:
    """Create and submit a payments-api package, emailing every signer their link."""
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                key,
                f"Release {key}",
                "production",
                None,
                (packages.ApplicationSpec("payments-api", version, ""),),
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, key, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )

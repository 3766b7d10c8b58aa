"""Shared workflow set-up for tests: a submitted package with its emailed tokens captured."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from gatekeeper.app import runtime
from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import checklists, packages, signoffs
from tests.conftest import SAMPLES

KEY = "2026.11-race"
MANAGER = "release-manager@example.com"


def prepare(app: Flask, clock: FixedClock) -> dict[str, str]:
    """Submit a payments-api package; return each signer's token (captured from the links)."""
    captured: dict[str, str] = {}
    settings = runtime(app).link_settings()
    with unit_of_work(db.session) as session:
        checklists.sync_checklists(session, SAMPLES, clock=clock)
        checklists.review_version(
            session,
            application="payments-api",
            version=7,
            action="approve",
            reviewer="release-board@example.com",
            consulted="x",
            clock=clock,
        )
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY, "Race", "prod", None, (packages.ApplicationSpec("payments-api", "1"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(session, KEY, actor=MANAGER, clock=clock, links=settings)
        for message in session.scalars(sa.select(OutboxMessage)):
            token = message.body_text.split("/s/", 1)[1].split()[0]
            captured[message.to_address] = token
    return captured

"""Shared set-up for emergency-release tests: a submitted storefront-web package (its checklist
allows emergencies), and the approvers' tokens captured from their emails."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, emergencies, packages, signoffs
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES

KEY = "2026.12-hotfix"
MANAGER = "release-manager@example.com"
DECLARER = "oncall-rm@example.com"
APPROVERS = ("incident-commander@example.com", "sre-lead@example.com", "web-lead@example.com")
E2E_SIGNERS = ("qa-lead@example.com", "sam@example.com")


def approve_storefront(session: Session, clock: FixedClock) -> None:
    checklists.sync_checklists(session, SAMPLES, clock=clock, declared_authors=[CHECKLIST_AUTHOR])
    for application, version in (("storefront-web", 12), ("payments-api", 7)):
        checklists.review_version(
            session,
            application=application,
            version=version,
            action="approve",
            reviewer="release-board@example.com",
            consulted="the key users",
            clock=clock,
        )


def submitted(app: Flask, clock: FixedClock, key: str = KEY, *, sync: bool = True) -> None:
    with unit_of_work(db.session) as session:
        if sync:
            approve_storefront(session, clock)
        packages.create_package(
            session,
            packages.PackageSpec(
                key,
                "Checkout fix",
                "prod",
                None,
                (packages.ApplicationSpec("storefront-web", "2026.12.1", "Fix the checkout"),),
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, key, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )


def tokens_of(template: str, route: str) -> dict[str, str]:
    """The newest token each recipient was emailed with `template`."""
    found: dict[str, str] = {}
    query = (
        sa.select(OutboxMessage)
        .where(OutboxMessage.template == template)
        .order_by(OutboxMessage.id)
    )
    for message in db.session.scalars(query):
        found[message.to_address] = message.body_text.split(f"/{route}/", 1)[1].split()[0]
    db.session.rollback()
    return found


def declare(
    app: Flask, clock: FixedClock, key: str = KEY, reason: str = "checkout is down"
) -> None:
    with unit_of_work(db.session) as session:
        emergencies.declare(
            session,
            key,
            reason=reason,
            actor=DECLARER,
            clock=clock,
            links=runtime(app).link_settings(),
        )


def approve(app: Flask, clock: FixedClock, approver: str) -> None:
    token = tokens_of("emergency_approval", "emergency")[approver]
    with unit_of_work(db.session) as session:
        emergencies.approve(session, token, links=runtime(app).link_settings(), clock=clock)


def gate(clock: FixedClock, key: str = KEY) -> packages.gate_rules.GateResult:
    result = packages.evaluate_gate(db.session, key, clock=clock, overdue_policy="block")
    db.session.rollback()
    return result

"""Set-up for governance tests: checklist versions on disk, signed and released packages, and
the review and report tokens the outbox carries."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.signoff import Decision
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, packages, reviews
from gatekeeper.services.checklists import checklist_of
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES

MANAGER = "release-manager@example.com"
BOARD = "release-board@example.com"  # the only reviewer of payments-api
UX_LEAD = "ux-lead@example.com"  # storefront-web's second reviewer
NEW_SCENARIO = "Refund more than 1,000 EUR and see it leave the refund queue within a minute"
TOKEN = re.compile(
    r"https?://[^\s<>\"']+?/(review/findings|review|report|s|confirm|emergency)/([A-Za-z0-9_\-.]+)"
)


def checklist_dir(tmp: Path, name: str = "checklists") -> Path:
    """A copy of the sample checklists that a test may change."""
    target = tmp / name
    shutil.copytree(SAMPLES, target)
    return target


def write_version(
    directory: Path,
    application: str,
    version: int,
    *,
    addresses: Sequence[str] = (),
    extra_scenario: str | None = NEW_SCENARIO,
) -> Path:
    """The sample of `application` as `version`, with one more scenario and `addresses`."""
    path = directory / f"{application}.yaml"
    text = (SAMPLES / f"{application}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^version: \d+$", f"version: {version}", text, count=1)
    if extra_scenario:
        text = re.sub(
            r"(?m)^(  scenarios:\n(?:    - .*\n)+)",
            rf"\g<1>    - {extra_scenario}\n",
            text,
            count=1,
        )
    if addresses:
        text = text.rstrip("\n") + f"\naddresses: [{', '.join(addresses)}]\n"
    path.write_text(text, encoding="utf-8")
    return path


def sync(
    app: Flask, clock: FixedClock, directory: Path, author: str | None = CHECKLIST_AUTHOR
) -> list[str]:
    """Sync through the review-requesting service, as the CLI does; returns created versions.
    Without an author (and no history read), who wrote the new versions is unknown."""
    with unit_of_work(db.session) as session:
        outcomes = reviews.sync_and_request_reviews(
            session,
            directory,
            clock=clock,
            declared_authors=[author] if author else [],
            settings=runtime(app).governance_settings(),
        )
        return [f"{o.application} v{o.version}" for o in outcomes if o.status == "created"]


def approve(
    clock: FixedClock,
    application: str,
    version: int,
    reviewer: str = BOARD,
    consulted: str = "Dana and Malik, in the weekly ops call",
    addresses: Sequence[str] = (),
) -> str:
    with unit_of_work(db.session) as session:
        review = checklists.review_version(
            session,
            application=application,
            version=version,
            action="approve",
            reviewer=reviewer,
            consulted=consulted,
            addresses=tuple(addresses),
            clock=clock,
        )
        return review.outcome


def submit(clock: FixedClock, key: str, applications: dict[str, str]) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                key,
                f"Release {key}",
                "production",
                None,
                tuple(packages.ApplicationSpec(a, v, "") for a, v in applications.items()),
            ),
            assembler=MANAGER,
            clock=clock,
        )
        packages.submit_package(session, key, actor=MANAGER, clock=clock)


def sign_everything(clock: FixedClock, key: str) -> None:
    with unit_of_work(db.session) as session:
        for request in packages.pending_requests(session, key):
            version = request.package_application.checklist_version
            assert version is not None
            checklist = checklist_of(version)
            if request.kind == "item":
                decision = Decision("item", "pass", evidence="https://ci.example.com/1")
            else:
                scenarios = tuple(range(len(checklist.user_validation.scenarios)))
                decision = Decision("key_user", "confirmed", scenarios_confirmed=scenarios)
            packages.record_signoff(session, request.id, decision, clock=clock)


def gate(
    app: Flask, clock: FixedClock, key: str, policy: str = gate_rules.BLOCK_OVERDUE
) -> gate_rules.GateResult:
    try:
        return packages.evaluate_gate(
            db.session,
            key,
            clock=clock,
            overdue_policy=policy,
            finding_warn_after=runtime(app).governance_settings().finding_warn_after,
        )
    finally:
        db.session.rollback()


def release(app: Flask, clock: FixedClock, key: str) -> None:
    result = gate(app, clock, key)
    assert result.status == gate_rules.OPEN, result.to_dict()
    with unit_of_work(db.session) as session:
        packages.release_package(
            session,
            key,
            digest=result.digest,
            actor=MANAGER,
            clock=clock,
            overdue_policy=gate_rules.BLOCK_OVERDUE,
            reports=runtime(app).governance_settings(),
        )


def tokens(kind: str, template: str | None = None, about: str | None = None) -> dict[str, str]:
    """The newest `kind` token (review, review/findings, report, s) emailed to each address,
    from the outbox; only from emails mentioning `about` when given."""
    found: dict[str, str] = {}
    query = sa.select(OutboxMessage).order_by(OutboxMessage.id)
    if template:
        query = query.where(OutboxMessage.template == template)
    for message in db.session.scalars(query):
        if about and about not in message.body_text:
            continue
        for match in TOKEN.finditer(message.body_text):
            if match.group(1) == kind:
                found[message.to_address] = match.group(2)
    return found


def outbox(template: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.template == template)
            .order_by(OutboxMessage.id)
        )
    )

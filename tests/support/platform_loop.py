"""What the CI-platform loop tests set up and read back: payments-api packages whose checklist
declares a deploy target, deployments seen, platform calls queued, and every emailed sign-off
link signed the way a key user would."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, PlatformDeployment
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs
from tests.conftest import SAMPLES
from tests.support.flows import MANAGER, approve_payments
from tests.support.link_forms import sign_link
from tests.support.mail import ANY_LINK


def deployments() -> list[PlatformDeployment]:
    db.session.remove()
    rows = list(db.session.scalars(sa.select(PlatformDeployment).order_by(PlatformDeployment.id)))
    db.session.expunge_all()
    return rows


def platform_calls() -> list[OutboxMessage]:
    db.session.remove()
    rows = list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.kind == "platform_call")
            .order_by(OutboxMessage.id)
        )
    )
    db.session.expunge_all()
    return rows


def sign_every_emailed_link(app: Flask, box: MailCatcher) -> int:
    """Sign every sign-off link in the mailbox (once each); the number of links signed."""
    links = {
        match.group(0)
        for message in box.messages()
        for match in ANY_LINK.finditer(message.text)
        if match.group(1) == "s"
    }
    browser = app.test_client()
    for link in sorted(links):
        answer = sign_link(browser, link.removeprefix("http://127.0.0.1:5000"))
        assert answer.status_code in (200, 302, 303), answer.text
    db.session.remove()
    return len(links)


def submit_targeted(
    app: Flask, clock: FixedClock, tmp_path: Path, target: str, *versions: tuple[str, str]
) -> None:
    """The sample checklists, payments-api's declaring `target` (one `deploy_targets` entry,
    e.g. `github: {repository: a/b, environment: production}`), synced and approved; then a
    package in review shipping payments-api at each (key, version)."""
    folder = tmp_path / "checklists"
    shutil.copytree(SAMPLES, folder)
    path = folder / "payments-api.yaml"
    path.write_text(path.read_text() + f"deploy_targets:\n  - {target}\n")
    with unit_of_work(db.session) as session:
        approve_payments(session, clock, folder)
    for key, version in versions:
        with unit_of_work(db.session) as session:
            packages.create_package(
                session,
                packages.PackageSpec(
                    key,
                    "Payments",
                    "production",
                    None,
                    (packages.ApplicationSpec("payments-api", version),),
                ),
                assembler=MANAGER,
                clock=clock,
            )
            signoffs.submit_for_signoff(
                session, key, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
            )

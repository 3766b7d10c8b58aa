"""What the CI-platform loop tests read back: deployments seen, platform calls queued, and
every emailed sign-off link signed the way a key user would."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, PlatformDeployment
from gatekeeper.notify.catcher import MailCatcher
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

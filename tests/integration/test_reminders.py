"""The reminder ladder: remind pending signers, escalate to the manager, warn before expiry."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, SignoffLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import signoffs
from tests.support.flows import KEY, MANAGER, prepare

SIGNER = "raj@example.com"


def remind(app: Flask, clock: FixedClock) -> dict[str, int]:
    with unit_of_work(db.session) as session:
        return signoffs.send_reminders(session, settings=runtime(app).link_settings(), clock=clock)


def mails(template: str, to: str | None = None) -> list[OutboxMessage]:
    query = sa.select(OutboxMessage).where(OutboxMessage.template == template)
    if to:
        query = query.where(OutboxMessage.to_address == to)
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


def test_nothing_happens_before_the_reminder_delay(app: Flask, clock: FixedClock) -> None:
    prepare(app, clock)
    clock.advance(timedelta(hours=47, minutes=59))
    assert remind(app, clock) == {"reminded": 0, "expiry_warnings": 0, "escalations": 0}


def test_the_ladder(app: Flask, clock: FixedClock) -> None:
    tokens = prepare(app, clock)
    settings = runtime(app).link_settings()
    pending_signers = len(tokens)
    clock.advance(settings.reminder_after)
    counts = remind(app, clock)
    assert counts["reminded"] == pending_signers
    reminder = [m for m in mails("signoff_request", SIGNER) if m.subject.startswith("Reminder")]
    assert len(reminder) == 1
    assert "you have not answered yet" in reminder[0].body_text
    states = db.session.scalars(
        sa.select(SignoffLink.state).where(SignoffLink.signer == SIGNER).order_by(SignoffLink.id)
    ).all()
    assert states == ["superseded", "active"], "the reminder carries a fresh link"
    assert remind(app, clock)["reminded"] == 0, "one reminder per link"

    clock.advance(settings.escalate_after - settings.reminder_after)
    counts = remind(app, clock)
    assert counts["escalations"] == 1
    escalation = mails("manager_attention", MANAGER)
    assert len(escalation) == 1
    assert "sign-offs are still missing" in escalation[0].subject
    assert f"{SIGNER} has not answered yet" in escalation[0].body_text
    assert remind(app, clock)["escalations"] == 0, "escalated once"


def test_expiry_warning_before_the_link_dies(app: Flask, clock: FixedClock) -> None:
    prepare(app, clock)
    settings = runtime(app).link_settings()
    with unit_of_work(db.session) as session:
        # Already reminded, so only the expiry warning is due.
        session.execute(sa.update(SignoffLink).values(reminded_at=clock.now()))
    clock.advance(settings.ttl - settings.expiry_warning)
    counts = remind(app, clock)
    assert counts["expiry_warnings"] > 0
    warning = mails("link_expiring", SIGNER)
    assert len(warning) == 1
    assert KEY in warning[0].subject
    assert "/s/resend" in warning[0].body_text
    assert remind(app, clock)["expiry_warnings"] == 0

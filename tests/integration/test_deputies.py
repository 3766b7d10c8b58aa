"""Deputies and absences on a real database: requests handed to deputies and back, what a
deputy's sign-off records and counts, SIGNER_AWAY, and the gate cache at absence boundaries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, Signoff, SignoffLink, SignoffRequest
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, LinkUnusable, NotFound, ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import deputies, packages, signoffs
from tests.support.deputies import (
    LEAD,
    LEAD_BACKUP,
    LEAD_DEPUTY,
    REFUNDS,
    SEC,
    SEC_DEPUTY,
    away,
    back,
    settle,
    submit_with_links,
    with_deputies,
)
from tests.support.flows import decisions_for, submit
from tests.support.governance import MANAGER, gate, tokens

KEY = "2026.12-away"
TICK = timedelta(microseconds=1)


def requests_of(person: str) -> list[SignoffRequest]:
    try:
        return list(
            db.session.scalars(
                sa.select(SignoffRequest)
                .where(SignoffRequest.signer == person)
                .order_by(SignoffRequest.id)
            )
        )
    finally:
        db.session.expunge_all()
        db.session.rollback()


def states(person: str) -> list[str]:
    return [r.state for r in requests_of(person)]


def link_unusable(app: Flask, clock: FixedClock, token: str) -> LinkUnusable:
    with pytest.raises(LinkUnusable) as refused:
        signoffs.open_link(db.session, token, settings=runtime(app).link_settings(), clock=clock)
    db.session.rollback()
    return refused.value


def poll(app: Flask) -> gate_rules.GateResult:
    try:
        served = runtime(app).gate_now(db.session, KEY)
    finally:
        db.session.rollback()
    assert served == gate(app, runtime(app).clock, KEY), "the cache served a stale gate"
    return served


@pytest.fixture
def prepared(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    with_deputies(app, clock, tmp_path)


@pytest.mark.usefixtures("prepared")
def test_someone_away_at_submit_is_not_asked_their_deputies_are(
    app: Flask, clock: FixedClock
) -> None:
    away(app, clock, LEAD)
    submit_with_links(app, clock, KEY)
    sent = tokens("s", template="signoff_request")
    assert LEAD not in sent
    assert {LEAD_DEPUTY, LEAD_BACKUP} <= set(sent)
    assert states(LEAD) == ["revoked"]
    assert [r.on_behalf_of for r in requests_of(LEAD_DEPUTY)] == [LEAD]
    result = gate(app, clock, KEY)
    (validation,) = [b for b in result.blockers if b.code == gate_rules.USER_VALIDATION_PENDING]
    assert validation.waiting_on == (REFUNDS, LEAD_BACKUP, LEAD_DEPUTY)


@pytest.mark.usefixtures("prepared")
def test_an_absence_in_force_hands_pending_requests_over_at_once(
    app: Flask, clock: FixedClock
) -> None:
    submit_with_links(app, clock, KEY)
    own = tokens("s")[SEC]
    clock.advance(timedelta(minutes=5))
    away(app, clock, SEC, note="conference")
    refused = link_unusable(app, clock, own)
    assert refused.reason == "handed"
    assert "handed to your deputies" in refused.message
    assert states(SEC) == ["revoked", "revoked"]
    assert states(SEC_DEPUTY) == ["pending", "pending"]
    deputy_token = tokens("s")[SEC_DEPUTY]
    submit(app, deputy_token, decisions_for(app, deputy_token, clock), clock)
    recorded = db.session.scalars(sa.select(Signoff).where(Signoff.signer == SEC_DEPUTY)).all()
    assert {s.on_behalf_of for s in recorded} == {SEC}
    db.session.rollback()
    result = gate(app, clock, KEY)
    assert [b.waiting_on for b in result.blockers if b.section == "security"] == [
        ("compliance@example.com",)
    ], "the deputy's sign-offs count for both of sec-oncall's items"
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert "person.away" in actions
    assert "signoff.handed_to_deputies" in actions
    details = db.session.scalars(
        sa.select(AuditEvent.details).where(AuditEvent.action == "signoff.recorded")
    ).all()
    assert all(SEC in d for d in details)
    db.session.rollback()


@pytest.mark.usefixtures("prepared")
def test_one_deputy_signing_closes_the_other_deputys_request(app: Flask, clock: FixedClock) -> None:
    away(app, clock, LEAD)
    submit_with_links(app, clock, KEY)
    token = tokens("s")[LEAD_DEPUTY]
    submit(app, token, decisions_for(app, token, clock), clock)
    assert states(LEAD_BACKUP) == ["revoked"]
    assert link_unusable(app, clock, tokens("s")[LEAD_BACKUP]).reason == "used"


@pytest.mark.usefixtures("prepared")
def test_a_future_absence_moves_requests_when_it_begins(app: Flask, clock: FixedClock) -> None:
    submit_with_links(app, clock, KEY)
    starts = clock.now() + timedelta(days=1)
    away(app, clock, SEC, starts=starts)
    assert states(SEC) == ["pending", "pending"]
    assert settle(app, clock).handed == {}
    clock.set(starts - TICK)
    assert settle(app, clock).handed == {}
    clock.set(starts)
    assert settle(app, clock).handed == {SEC: [SEC_DEPUTY]}
    assert states(SEC) == ["revoked", "revoked"]
    assert settle(app, clock).handed == {}, "a second pass moves nothing"


@pytest.mark.usefixtures("prepared")
def test_back_returns_what_no_deputy_answered(app: Flask, clock: FixedClock) -> None:
    submit_with_links(app, clock, KEY)
    away(app, clock, SEC)
    deputy_token = tokens("s")[SEC_DEPUTY]
    clock.advance(timedelta(hours=1))
    back(app, clock, SEC)
    assert states(SEC) == ["pending", "pending"]
    assert states(SEC_DEPUTY) == ["revoked", "revoked"]
    assert link_unusable(app, clock, deputy_token).reason == "revoked"
    fresh = tokens("s")[SEC]
    submit(app, fresh, decisions_for(app, fresh, clock), clock)
    with pytest.raises(Conflict, match="not recorded as away"):
        back(app, clock, SEC)
    db.session.rollback()


@pytest.mark.usefixtures("prepared")
def test_an_absence_ending_on_its_own_returns_requests_at_the_next_pass(
    app: Flask, clock: FixedClock
) -> None:
    submit_with_links(app, clock, KEY)
    away(app, clock, SEC, days=2)
    clock.advance(timedelta(days=2))
    assert settle(app, clock).returned == {SEC: [SEC_DEPUTY]}
    assert states(SEC) == ["pending", "pending"]


@pytest.mark.usefixtures("prepared")
def test_a_filled_place_stays_filled_when_the_person_returns(app: Flask, clock: FixedClock) -> None:
    away(app, clock, LEAD)
    submit_with_links(app, clock, KEY)
    token = tokens("s")[LEAD_DEPUTY]
    submit(app, token, decisions_for(app, token, clock), clock)
    back(app, clock, LEAD)
    assert states(LEAD) == ["revoked"]


@pytest.mark.usefixtures("prepared")
def test_an_away_person_without_deputy_blocks_now_and_the_cache_follows_to_the_microsecond(
    app: Flask, clock: FixedClock
) -> None:
    submit_with_links(app, clock, KEY)
    assert poll(app).status == gate_rules.PENDING
    starts = clock.now() + timedelta(hours=6)
    away(app, clock, REFUNDS, starts=starts, days=3)
    assert poll(app).status == gate_rules.PENDING
    clock.set(starts - TICK)
    assert poll(app).status == gate_rules.PENDING
    clock.set(starts)
    result = poll(app)
    assert result.status == gate_rules.BLOCKED
    (blocker,) = [b for b in result.blockers if b.code == gate_rules.SIGNER_AWAY]
    assert blocker.message == (
        f"{REFUNDS} is away until {(starts + timedelta(days=3)).date().isoformat()} and "
        "checklist payments-api v8 names no deputy"
    )
    assert states(REFUNDS) == ["pending"], "nobody replaces them silently"
    clock.set(starts + timedelta(days=3) - TICK)
    assert poll(app).status == gate_rules.BLOCKED
    clock.set(starts + timedelta(days=3))
    assert poll(app).status == gate_rules.PENDING


@pytest.mark.usefixtures("prepared")
def test_ending_an_absence_is_a_change_the_cache_sees(app: Flask, clock: FixedClock) -> None:
    submit_with_links(app, clock, KEY)
    absence = away(app, clock, REFUNDS)
    assert poll(app).status == gate_rules.BLOCKED
    with unit_of_work(db.session) as session:
        deputies.end_absence(
            session, absence.id, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )
    assert poll(app).status == gate_rules.PENDING


@pytest.mark.usefixtures("prepared")
def test_bad_absences_are_refused(app: Flask, clock: FixedClock) -> None:
    settings = runtime(app).link_settings()
    now = clock.now()
    cases = [
        ("not an address", now, now + timedelta(days=1), "not a valid email"),
        (SEC, now, now, "end after"),
        (SEC, now - timedelta(days=3), now - timedelta(days=1), "over already"),
    ]
    for person, starts, ends, message in cases:
        with pytest.raises(ValidationFailed, match=message), unit_of_work(db.session) as session:
            deputies.record_absence(
                session,
                person=person,
                starts_at=starts,
                ends_at=ends,
                note="",
                actor=MANAGER,
                clock=clock,
                links=settings,
            )
    with pytest.raises(NotFound), unit_of_work(db.session) as session:
        deputies.end_absence(session, 999, actor=MANAGER, clock=clock, links=settings)
    absence = away(app, clock, SEC)
    with unit_of_work(db.session) as session:
        deputies.end_absence(session, absence.id, actor=MANAGER, clock=clock, links=settings)
    with pytest.raises(Conflict, match="over already"), unit_of_work(db.session) as session:
        deputies.end_absence(session, absence.id, actor=MANAGER, clock=clock, links=settings)


@pytest.mark.usefixtures("prepared")
def test_away_from_a_link_hands_it_over_and_refuses_twice(app: Flask, clock: FixedClock) -> None:
    submit_with_links(app, clock, KEY)
    settings = runtime(app).link_settings()
    token = tokens("s")[SEC]
    until = clock.now() + timedelta(days=4)
    with unit_of_work(db.session) as session:
        done = deputies.away_from_link(
            session, token, until=until, note="", links=settings, clock=clock
        )
    assert done.deputies == [SEC_DEPUTY]
    assert link_unusable(app, clock, token).reason == "handed"
    # The refunds desk has no deputy: recorded, the link stays theirs, and a second time is
    # refused.
    refunds = tokens("s")[REFUNDS]
    with unit_of_work(db.session) as session:
        done = deputies.away_from_link(
            session, refunds, until=until, note="", links=settings, clock=clock
        )
    assert done.deputies == []
    with (
        pytest.raises(Conflict, match="already recorded as away"),
        unit_of_work(db.session) as session,
    ):
        deputies.away_from_link(session, refunds, until=until, note="", links=settings, clock=clock)
    link = db.session.scalar(sa.select(SignoffLink).where(SignoffLink.signer == REFUNDS))
    assert link is not None
    assert link.state == "active"
    db.session.rollback()


@pytest.mark.usefixtures("prepared")
def test_an_edit_while_away_hands_the_new_requests_and_back_returns_only_current_ones(
    app: Flask, clock: FixedClock
) -> None:
    submit_with_links(app, clock, KEY)
    away(app, clock, SEC)
    clock.advance(timedelta(hours=1))
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            KEY,
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", "8.1"),)
            ),
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )
    # Revision 1's places were handed and then went stale with the edit; revision 2's were
    # handed as they were made.
    assert states(SEC) == ["revoked"] * 4
    assert [r.revision for r in requests_of(SEC_DEPUTY) if r.state == "pending"] == [2, 2]
    back(app, clock, SEC)
    assert [(r.revision, r.state) for r in requests_of(SEC)] == [
        (1, "revoked"),
        (1, "revoked"),
        (2, "pending"),
        (2, "pending"),
    ]

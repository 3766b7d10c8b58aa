"""Races with real threads and connections: an absence racing the person's own sign-off, and
two deputies signing one place at once. Each leaves exactly one consistent outcome."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Package, Signoff, SignoffRequest
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import GatekeeperError
from tests.support.deputies import (
    LEAD,
    LEAD_BACKUP,
    LEAD_DEPUTY,
    SEC,
    SEC_DEPUTY,
    away,
    back,
    submit_with_links,
    with_deputies,
)
from tests.support.flows import decisions_for, race, submit
from tests.support.governance import gate, tokens

ROUNDS = 12


def _count(query: sa.Select[tuple[int]]) -> int:
    try:
        return db.session.scalar(query) or 0
    finally:
        db.session.rollback()


def test_an_absence_racing_the_persons_own_sign_off(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    with_deputies(app, clock, tmp_path)
    outcomes = set()
    for round_ in range(ROUNDS):
        key = f"2026.12-race-{round_}"
        submit_with_links(app, clock, key)
        token = tokens("s", about=key)[SEC]
        decisions = decisions_for(app, token, clock)
        results = race(
            app,
            [lambda t=token, d=decisions: submit(app, t, d, clock), lambda: away(app, clock, SEC)],
        )
        assert results[1] is None, results  # the absence is always recorded
        package_id = _count(sa.select(Package.id).where(Package.key == key))
        own = _count(
            sa.select(sa.func.count())
            .select_from(Signoff)
            .where(Signoff.package_id == package_id, Signoff.signer == SEC)
        )
        handed = _count(
            sa.select(sa.func.count())
            .select_from(SignoffRequest)
            .where(
                SignoffRequest.package_id == package_id,
                SignoffRequest.signer == SEC_DEPUTY,
                SignoffRequest.state == "pending",
            )
        )
        if results[0] is None:
            assert (own, handed) == (2, 0), "signed first: nothing left to hand over"
            outcomes.add("signed")
        else:
            assert isinstance(results[0], GatekeeperError), results
            assert (own, handed) == (0, 2), "away first: the deputy has it, the link died"
            outcomes.add("handed")
        security = [b for b in gate(app, clock, key).blockers if b.section == "security"]
        expected = {"compliance@example.com"} | (set() if results[0] is None else {SEC_DEPUTY})
        assert {p for b in security for p in b.waiting_on} == expected
        back(app, clock, SEC)
    assert outcomes  # which one won each round is up to the scheduler


def test_two_deputies_signing_at_once_fill_the_place_once(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    with_deputies(app, clock, tmp_path)
    away(app, clock, LEAD)
    for round_ in range(ROUNDS):
        key = f"2026.12-deputies-{round_}"
        submit_with_links(app, clock, key)
        sent = tokens("s", about=key)
        jobs = []
        for deputy in (LEAD_DEPUTY, LEAD_BACKUP):
            token = sent[deputy]
            decisions = decisions_for(app, token, clock)
            jobs.append(lambda t=token, d=decisions: submit(app, t, d, clock))
        results = race(app, jobs)
        assert sum(r is None for r in results) == 1, results
        assert all(isinstance(r, GatekeeperError) for r in results if r is not None), results
        package_id = _count(sa.select(Package.id).where(Package.key == key))
        recorded = _count(
            sa.select(sa.func.count())
            .select_from(Signoff)
            .where(Signoff.package_id == package_id, Signoff.on_behalf_of == LEAD)
        )
        assert recorded == 1
        waiting = [b.waiting_on for b in gate(app, clock, key).blockers if b.section is None]
        assert waiting == [("refunds-desk@example.com",)], "the lead's place is filled"

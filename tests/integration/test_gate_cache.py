"""The gate cache CI polls through: every change, and the clock alone, reach the next poll.

A stale "open" is the worst answer Gatekeeper can give, so each test compares what the cache
serves with a fresh evaluation of the same package at the same moment.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import audit, packages
from tests.conftest import dispose, make_app
from tests.integration.test_findings import report
from tests.support.governance import (
    BOARD,
    approve,
    checklist_dir,
    gate,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
)

KEY = "2026.12-r1"
SHIPPED = "2026.11-r9"
TICK = timedelta(microseconds=1)
PAYMENTS_REVIEW_EVERY = timedelta(days=90)


def poll(app: Flask) -> gate_rules.GateResult:
    """What CI gets, checked against a fresh evaluation at the same moment."""
    try:
        served = runtime(app).gate_now(db.session, KEY)
    finally:
        db.session.rollback()
    assert served == gate(app, runtime(app).clock, KEY), "the cache served a stale gate"
    return served


def counters(app: Flask) -> tuple[int, int]:
    cache = runtime(app).gate_cache
    return cache.hits, cache.misses


def prepared(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    sync(app, clock, checklist_dir(tmp_path))
    approve(clock, "payments-api", 7)
    submit(clock, KEY, {"payments-api": "7.4.0"})


def edit_version(clock: FixedClock, version: str) -> None:
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", version, "hotfix"),)
            ),
            actor="release-manager@example.com",
            clock=clock,
        )


def test_each_change_reaches_the_next_poll(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    prepared(app, clock, tmp_path)
    assert poll(app).status == gate_rules.PENDING
    hits, misses = counters(app)
    assert poll(app).status == gate_rules.PENDING
    assert counters(app) == (hits + 1, misses), "an unchanged package is served from the cache"
    sign_everything(clock, KEY)
    assert poll(app).status == gate_rules.OPEN
    assert counters(app) == (hits + 1, misses + 1)
    edit_version(clock, "7.4.1")  # the sign-offs of 7.4.0 go stale
    after_edit = poll(app)
    assert after_edit.status == gate_rules.PENDING
    assert after_edit.revision == 2
    sign_everything(clock, KEY)
    assert poll(app).status == gate_rules.OPEN
    with unit_of_work(db.session) as session:
        packages.cancel_package(session, KEY, actor="release-manager@example.com", clock=clock)
    assert poll(app).status == gate_rules.BLOCKED


def test_the_clock_alone_ends_a_cached_open_gate_when_a_review_falls_due(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    due = clock.now() + PAYMENTS_REVIEW_EVERY
    sign_everything(clock, KEY)
    assert poll(app).status == gate_rules.OPEN
    clock.set(due - TICK)
    hits, misses = counters(app)
    assert poll(app).status == gate_rules.OPEN
    assert counters(app) == (hits + 1, misses), "still stable one microsecond before"
    clock.set(due)
    overdue = poll(app)
    assert overdue.status == gate_rules.BLOCKED
    assert [b.code for b in overdue.blockers] == [gate_rules.REVIEW_OVERDUE]
    approve(clock, "payments-api", 7)  # reaffirmed: a governance review is a change too
    assert poll(app).status == gate_rules.OPEN


def test_a_finding_warns_on_time_and_its_age_counts_up(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    submit(clock, SHIPPED, {"payments-api": "7.3.2"})
    sign_everything(clock, SHIPPED)
    release(app, clock, SHIPPED)
    sign_everything(clock, KEY)
    report(app, clock, tokens("report", about=SHIPPED)["refunds-desk@example.com"])
    reported = clock.now()
    assert poll(app).warnings == ()
    warn_after = runtime(app).governance_settings().finding_warn_after
    clock.set(reported + warn_after - TICK)
    assert poll(app).warnings == ()
    clock.set(reported + warn_after)
    (warning,) = poll(app).warnings
    assert "after 7 day(s)" in warning.message
    clock.set(reported + warn_after + timedelta(days=1))
    (warning,) = poll(app).warnings
    assert "after 8 day(s)" in warning.message


def test_a_rolled_back_write_never_reaches_the_cache(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    assert poll(app).status == gate_rules.PENDING
    hits, misses = counters(app)
    try:
        with unit_of_work(db.session) as session:
            audit.record(session, action="test.probe", actor=BOARD, subject="x", now=clock.now())
            inside = runtime(app).gate_now(session, KEY)
            assert inside.status == gate_rules.PENDING
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert counters(app) == (hits, misses), "a write transaction neither reads nor fills it"
    sign_everything(clock, KEY)  # reuses the rolled-back sequence number, with another hash
    assert poll(app).status == gate_rules.OPEN


def test_another_process_sees_a_change_made_elsewhere(
    app: Flask, clock: FixedClock, tmp_path: Path, database_url: str
) -> None:
    prepared(app, clock, tmp_path)
    other = make_app(database_url, tmp_path / "other", clock)
    try:
        with other.app_context():
            assert runtime(other).gate_now(db.session, KEY).status == gate_rules.PENDING
            db.session.rollback()
        sign_everything(clock, KEY)  # through this process, not the other
        with other.app_context():
            assert runtime(other).gate_now(db.session, KEY).status == gate_rules.OPEN
            db.session.rollback()
    finally:
        dispose(other)


def test_polls_racing_the_last_sign_off_never_open_early_and_see_it_at_once(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """Pollers in threads (their own connections, one shared cache) while the sign-offs and then
    an edit commit: no poll says open before the sign-offs, the first poll after their commit
    says open, and the first poll after the edit's commit does not."""
    prepared(app, clock, tmp_path)
    committing = threading.Event()
    stop = threading.Event()
    early: list[str] = []
    errors: list[BaseException] = []

    def poller() -> None:
        with app.app_context():
            try:
                while not stop.is_set():
                    status = runtime(app).gate_now(db.session, KEY).status
                    db.session.rollback()
                    if status == gate_rules.OPEN and not committing.is_set():
                        early.append(status)
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=poller) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        committing.set()
        sign_everything(clock, KEY)
        assert poll(app).status == gate_rules.OPEN
        edit_version(clock, "7.4.2")
        assert poll(app).status == gate_rules.PENDING, "an edit closes the cached open gate"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert early == []

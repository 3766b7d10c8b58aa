"""Key users confirm a release still works once it is live: the worker asks at release +
after_hours, reminds once before the window closes, and each released package gets an outcome.
Real SMTP on loopback; the clock is fixed and moved to each boundary to the microsecond."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import ConfirmationLink, Finding, OutboxMessage
from gatekeeper.domain import confirmation as rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.signing import badge_signature
from tests.functional.web_helpers import MANAGER, add_staff, client, csrf, sign_in
from tests.support.governance import (
    approve,
    checklist_dir,
    gate,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
)
from tests.support.mail import messages_to, run_worker

RELEASED = "2026.11-live"
SETTLEMENT = "settlement-lead@example.com"
REFUNDS = "refunds-desk@example.com"
TICK = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
PROBLEM = {
    "what_happened": "The end-of-day report <b>doubled</b> every refund",
    "impact": "Settlement was off by 12,000 EUR",
    "could_have_caught": "Compare totals after a refund",
}


def ship(app: Flask, clock: FixedClock, tmp_path: Path, confirm: str = "") -> datetime:
    """payments-api v7 released; returns when. `confirm` is the checklist's setting."""
    directory = checklist_dir(tmp_path)
    if confirm:
        path = directory / "payments-api.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"(?m)^(  scenarios:\n)", confirm + r"\g<1>", text, count=1))
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, RELEASED, {"payments-api": "7.3.2"})
    sign_everything(clock, RELEASED)
    release(app, clock, RELEASED)
    return clock.now()


def asked(kind: str = "") -> list[OutboxMessage]:
    db.session.rollback()
    rows = db.session.scalars(
        sa.select(OutboxMessage)
        .where(OutboxMessage.template == "confirmation_request")
        .order_by(OutboxMessage.id)
    ).all()
    return [r for r in rows if kind in r.subject]


def outcome(app: Flask, clock: FixedClock) -> dict[str, object]:
    found = gate(app, clock, RELEASED).to_dict()
    assert found["confirmation"] is not None
    return {"outcome": found["outcome"], **found["confirmation"]}


def link(who: str) -> str:
    db.session.rollback()
    return f"/confirm/{tokens('confirm')[who]}"


def answer(app: Flask, path: str, **form: str) -> tuple[int, str]:
    browser = client(app)
    page = browser.get(path)
    assert page.status_code == 200, page.text
    response = browser.post(path, data={"csrf_token": csrf(page.text), **form})
    return response.status_code, response.text


def test_asked_at_after_hours_reminded_once_and_unconfirmed_when_the_window_closes(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    released = ship(app, clock, tmp_path)
    opens, closes = released + 24 * HOUR, released + 96 * HOUR
    clock.set(opens - TICK)
    run_worker(app)
    assert asked() == [], "nobody is asked before after_hours"
    clock.set(opens)
    assert run_worker(app).reminders["confirmations_asked"] == 2
    assert sorted(m.to_address for m in asked()) == [REFUNDS, SETTLEMENT]
    run_worker(app)
    assert len(asked()) == 2, "asked once"
    (mail,) = [m for m in messages_to(smtp, SETTLEMENT) if "still working" in m.subject]
    assert "works once" in mail.text
    first = link(REFUNDS)
    status, text = answer(app, link(SETTLEMENT), answer="works")
    assert status == 200, text
    clock.set(closes - 24 * HOUR - TICK)
    run_worker(app)
    assert asked("Reminder") == []
    clock.set(closes - 24 * HOUR)
    assert run_worker(app).reminders["confirmations_reminded"] == 1
    assert [m.to_address for m in asked("Reminder")] == [REFUNDS], "only who has not answered"
    run_worker(app)
    assert len(asked("Reminder")) == 1, "reminded once"
    superseded = client(app).get(first)
    assert (superseded.status_code, 'data-reason="superseded"' in superseded.text) == (410, True)
    reminded = link(REFUNDS)
    clock.set(closes - TICK)
    assert outcome(app, clock)["outcome"] is None
    assert client(app).get(reminded).status_code == 200
    clock.set(closes)
    assert outcome(app, clock) == {
        "outcome": rules.UNCONFIRMED,
        "closes_at": closes.isoformat(),
        "waiting_on": [REFUNDS],
        "problems_reported_by": [],
    }
    expired = client(app).get(reminded)
    assert (expired.status_code, 'data-reason="expired"' in expired.text) == (410, True)
    clock.set(closes + HOUR)
    run_worker(app)
    assert len(asked()) == 3, "nobody is asked once the window closed"


def test_every_key_user_saying_it_works_confirms_the_release_at_once_under_the_cache(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    released = ship(app, clock, tmp_path)
    clock.set(released + 24 * HOUR)
    run_worker(app)
    rt = runtime(app)
    assert rt.gate_now(db.session, RELEASED).outcome is None
    db.session.rollback()
    path = link(SETTLEMENT)
    browser = client(app)
    page = browser.get(path)
    assert page.headers["Cache-Control"] == "no-store"
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert "Run the end-of-day settlement report" in page.text
    assert browser.head(path).status_code == 200
    assert db.session.scalars(sa.select(ConfirmationLink.answer)).all() == [None, None], (
        "opening the link decides nothing"
    )
    assert browser.post(path, data={"answer": "works"}).status_code == 400, "CSRF is required"
    status, text = answer(app, path, answer="works")
    assert (status, 'data-answer="works"' in text) == (200, True)
    used = browser.get(path)
    assert (used.status_code, "You already answered" in used.text) == (410, True)
    assert (
        browser.post(path, data={"csrf_token": csrf(page.text), "answer": "works"}).status_code
        == 410
    )
    assert rt.gate_now(db.session, RELEASED).outcome is None, "one key user is still missing"
    db.session.rollback()
    answer(app, link(REFUNDS), answer="works")
    assert rt.gate_now(db.session, RELEASED).outcome == rules.CONFIRMED, "the cache moved at once"
    db.session.rollback()
    assert runtime(app).gate_now(db.session, RELEASED).to_dict()["confirmation"]["waiting_on"] == []


def test_a_problem_is_filed_as_a_blameless_finding(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    released = ship(app, clock, tmp_path)
    clock.set(released + 30 * HOUR)
    run_worker(app)
    path = link(REFUNDS)
    status, text = answer(app, path, answer="problem", what_happened="Broken")
    assert status == 422
    assert "This is needed." in text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Finding)) == 0
    status, text = answer(app, path, answer="problem", **PROBLEM)
    assert status == 200, text
    assert 'data-ref="F-1"' in text
    db.session.rollback()
    found = db.session.get(Finding, 1)
    assert found is not None
    assert (found.reported_by, found.what_happened) == (REFUNDS, PROBLEM["what_happened"])
    result = outcome(app, clock)
    assert (result["outcome"], result["problems_reported_by"]) == (
        rules.PROBLEMS_REPORTED,
        [REFUNDS],
    )


def test_after_hours_zero_asks_nobody(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    released = ship(app, clock, tmp_path, confirm="  confirm_after_release:\n    after_hours: 0\n")
    clock.set(released + 24 * HOUR)
    run_worker(app)
    assert asked() == []
    found = gate(app, clock, RELEASED).to_dict()
    assert (found["outcome"], found["confirmation"]) == (None, None)


def test_a_token_of_another_purpose_or_a_forged_one_is_refused(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    ship(app, clock, tmp_path)
    report_token = tokens("report")[REFUNDS]
    assert client(app).get(f"/confirm/{report_token}").status_code == 404
    assert client(app).get("/confirm/not-a-token").status_code == 404


def test_the_outcome_shows_on_the_dashboard_board_badge_and_evidence_pack(
    app: Flask, clock: FixedClock, tmp_path: Path, smtp: MailCatcher
) -> None:
    released = ship(app, clock, tmp_path)
    add_staff(clock)
    clock.set(released + 24 * HOUR)
    run_worker(app)
    answer(app, link(SETTLEMENT), answer="works")
    clock.set(released + 96 * HOUR)
    staff = sign_in(app, MANAGER)
    dashboard = staff.get("/")
    assert 'data-outcome="unconfirmed"' in dashboard.text
    assert f"no answer from {REFUNDS}" in dashboard.text
    board = staff.get(f"/packages/{RELEASED}")
    assert 'data-outcome="unconfirmed"' in board.text
    pack = staff.get(f"/packages/{RELEASED}/evidence.html")
    assert pack.status_code == 200
    assert 'data-outcome="unconfirmed"' in pack.text
    secret_keys = runtime(app).settings.secret_keys
    badge = client(app).get(f"/badges/{RELEASED}/{badge_signature(secret_keys, RELEASED)}.svg")
    assert "gate: released, unconfirmed" in badge.text

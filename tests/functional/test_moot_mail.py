"""Mail that is moot by the time the worker picks it up is not sent: its link was used,
replaced, revoked or expired, or what it asks for was already decided. Real worker, real SMTP."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify import worker
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.notify.outbox import queue_email
from gatekeeper.runtime import runtime
from gatekeeper.services import signoffs
from tests.conftest import CHECKLIST_AUTHOR
from tests.functional.api_helpers import create_package
from tests.functional.web_helpers import add_user, sign_in_url
from tests.support.governance import BOARD, approve, checklist_dir
from tests.support.mail import messages_to, run_worker

KEY = "2026.11-moot"
MANAGER = "release-manager@example.com"
DANA = "settlement-lead@example.com"  # a payments-api key user


def moot_rows(template: str | None = None) -> list[str]:
    """Why, of every row (of `template`) the worker found moot, oldest first."""
    db.session.rollback()
    query = sa.select(OutboxMessage).where(OutboxMessage.state == "moot")
    if template:
        query = query.where(OutboxMessage.template == template)
    found = [row.last_error for row in db.session.scalars(query.order_by(OutboxMessage.id))]
    db.session.rollback()
    return found


def subjects(smtp: MailCatcher, who: str) -> list[str]:
    return [m.subject for m in messages_to(smtp, who)]


def test_review_requests_decided_before_the_worker_runs_are_not_sent(
    app: Flask, runner: FlaskCliRunner, smtp: MailCatcher, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    synced = runner.invoke(cli, ["checklists", "sync", str(directory), "--author", "dev@x.org"])
    assert synced.exit_code == 0, synced.output
    approved = runner.invoke(
        cli,
        [
            *("checklists", "review", "payments-api", "--version", "7", "--approve"),
            *("--reviewer", BOARD, "--consulted", "Dana, by phone"),
        ],
    )
    assert approved.exit_code == 0, approved.output
    report = run_worker(app)
    assert report.delivery.moot == 1
    assert "Review needed: Payments API checklist v7" not in subjects(smtp, BOARD)
    assert "Review needed: Storefront web shop checklist v12" in subjects(smtp, BOARD)
    (why,) = moot_rows()
    assert "was already approved by release-board@example.com" in why
    status = runner.invoke(cli, ["outbox", "status"])
    assert "moot 1" in status.output
    assert f"to {BOARD}: Review needed: Payments API checklist v7 — decided: " in status.output
    listed = json.loads(runner.invoke(cli, ["outbox", "status", "--json"]).output)
    assert listed["counts"]["moot"] == 1
    assert [m["to"] for m in listed["moot"]] == [BOARD]


def submitted(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    """payments-api v7 approved and a package with it submitted: its sign-off emails queued."""
    runner = app.test_cli_runner()
    directory = checklist_dir(tmp_path)
    sync = ["checklists", "sync", str(directory), "--author", CHECKLIST_AUTHOR]
    assert runner.invoke(cli, sync).exit_code == 0
    approve(clock, "payments-api", 7)
    create_package(clock, KEY, {"payments-api": "7.4.0"}, submit=False)
    with unit_of_work(db.session) as session:
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )


def test_a_sign_off_link_replaced_before_delivery_sends_only_the_new_one(
    app: Flask, smtp: MailCatcher, clock: FixedClock, tmp_path: Path
) -> None:
    submitted(app, clock, tmp_path)
    clock.advance(timedelta(minutes=11))  # a resend never replaces a link younger than that
    with unit_of_work(db.session) as session:
        signoffs.resend_link(
            session,
            email=DANA,
            package_key=KEY,
            settings=runtime(app).link_settings(),
            clock=clock,
        )
    run_worker(app)
    assert len([s for s in subjects(smtp, DANA) if KEY in s]) == 1, "one link, the newest"
    (why,) = moot_rows("signoff_request")
    assert "a new link was emailed" in why


def test_sign_off_emails_of_a_cancelled_package_are_not_sent(
    app: Flask, smtp: MailCatcher, clock: FixedClock, tmp_path: Path
) -> None:
    submitted(app, clock, tmp_path)
    with unit_of_work(db.session) as session:
        signoffs.cancel_and_revoke(session, KEY, actor=MANAGER, clock=clock, overdue_policy="block")
    run_worker(app)
    assert not [m for m in smtp.messages() if KEY in m.subject]
    moot = moot_rows("signoff_request")
    assert len(moot) > 1
    assert all("no longer needs this sign-off" in why for why in moot)


def test_a_sign_in_link_replaced_or_expired_before_delivery_is_not_sent(
    app: Flask, smtp: MailCatcher, clock: FixedClock
) -> None:
    add_user(clock, MANAGER, "release_manager")
    sign_in_url(app, MANAGER)
    clock.advance(timedelta(minutes=3))  # a new sign-in link only once the last is 2 minutes old
    newest = sign_in_url(app, MANAGER)
    run_worker(app)
    (mail,) = messages_to(smtp, MANAGER)
    assert newest in mail.text
    (why,) = moot_rows()
    assert why.startswith("superseded: A newer sign-in link was sent")
    clock.advance(timedelta(minutes=3))
    sign_in_url(app, MANAGER)
    clock.advance(timedelta(minutes=16))  # the worker was down longer than the link lives
    run_worker(app)
    assert len(messages_to(smtp, MANAGER)) == 1
    assert moot_rows()[1] == "expired: This sign-in link has expired."


def test_a_failing_moot_check_holds_no_mail_back(
    app: Flask,
    smtp: MailCatcher,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Alembic's logging set-up, run when the test session migrates, disables earlier loggers.
    monkeypatch.setattr(worker.log, "disabled", False)
    with unit_of_work(db.session) as session:
        queue_email(
            session,
            to=DANA,
            template="link_expiring",
            context={"package": {"key": KEY, "title": "t"}, "expires_at": "x", "resend_url": "x"},
            now=clock.now(),
            link=(signoffs.MAIL_LINK_KIND, 12345),
        )

    def broken(*_: object) -> dict[int, str]:
        raise RuntimeError("a bug in a check")

    report = worker.deliver(
        db.session,
        mail_state=app.extensions["mail"],
        worker="test",
        clock=clock,
        timeout=5,
        sender="gk@example.com",
        moot=broken,
    )
    assert (report.sent, report.moot) == (1, 0)
    assert "could not tell which outbox messages are moot" in caplog.text

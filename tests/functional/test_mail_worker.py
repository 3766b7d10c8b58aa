"""The outbox worker over real SMTP on loopback: down, hanging, 4xx, 5xx, leases, many workers."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_mail import email_dispatched

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify import worker
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.notify.outbox import header_safe, queue_email
from gatekeeper.runtime import runtime
from gatekeeper.services.mail_worker import PassReport
from tests.support.mail import (
    SIGNER,
    Package,
    catcher,
    free_port,
    hanging_server,
    messages_to,
    point_mail_at,
    queue,
    replying_server,
    run_worker,
)

SECOND = timedelta(seconds=1)


def outbox_rows() -> list[OutboxMessage]:
    """Every outbox row, freshly read and detached so no transaction is left open."""
    db.session.rollback()
    rows = list(db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))
    db.session.expunge_all()
    db.session.rollback()
    return rows


def states() -> list[str]:
    return [row.state for row in outbox_rows()]


def subjects(box: MailCatcher) -> Counter[str]:
    return Counter(message.subject for message in box.messages())


def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@contextmanager
def catcher_on(port: int) -> Iterator[MailCatcher]:
    box = MailCatcher(port=port)
    box.start()
    try:
        yield box
    finally:
        box.stop()


class RawCatcher(MailCatcher):
    """A catcher that also keeps each message's envelope recipients and raw bytes."""

    def __init__(self, port: int) -> None:
        super().__init__(port=port)
        self.raw: list[tuple[tuple[str, ...], bytes]] = []

    def add(self, sender: str, recipients: tuple[str, ...], content: bytes) -> None:
        self.raw.append((recipients, content))
        super().add(sender, recipients, content)


@contextmanager
def raw_catcher() -> Iterator[RawCatcher]:
    box = RawCatcher(port=free_port())
    box.start()
    try:
        yield box
    finally:
        box.stop()


def start_pass(app: Flask, *, timeout: float) -> tuple[threading.Thread, dict[str, Any]]:
    """A worker pass in its own thread and app context; `outcome` gets report/error/elapsed."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        with app.app_context():
            started = time.monotonic()
            try:
                outcome["report"] = run_worker(app, timeout=timeout, worker_id="threaded")
            except BaseException as exc:  # reported to the main thread
                outcome["error"] = exc
            outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome


def one_pass(app: Flask) -> PassReport:
    """A pass against servers that answer: a roomy timeout so a loaded machine cannot flake it."""
    return run_worker(app, timeout=5.0)


def assert_delivered_once(box: MailCatcher, rows: list[OutboxMessage]) -> None:
    caught = subjects(box)
    assert len(caught) == len(rows)
    assert set(caught.values()) == {1}, [s for s, n in caught.items() if n > 1]
    assert set(caught) == {row.subject for row in rows}
    assert all(row.state == "sent" for row in rows)


def test_smtp_down_then_up_delivers_everything_exactly_once(app: Flask, clock: FixedClock) -> None:
    port = free_port()  # nothing listens here yet
    point_mail_at(app, port)
    ids = queue(clock, 5)

    report = one_pass(app)
    assert (report.delivery.sent, report.delivery.retried, report.delivery.dead) == (0, 5, 0)
    rows = outbox_rows()
    assert [row.id for row in rows] == ids
    for row in rows:
        assert row.state == "queued"
        assert row.attempts == 1
        assert row.next_attempt_at == clock.now() + worker.backoff(1)
        assert row.claimed_by is None
        assert row.last_error.startswith("cannot connect:"), row.last_error

    with catcher_on(port) as box:
        clock.advance(worker.backoff(1) - SECOND)
        report = one_pass(app)
        assert report.delivery.sent == 0
        assert box.messages() == []
        assert states() == ["queued"] * 5

        clock.advance(2 * SECOND)
        report = one_pass(app)
        assert report.delivery.sent == 5
        rows = outbox_rows()
        assert_delivered_once(box, rows)
        assert all(row.attempts == 2 and row.sent_at == clock.now() for row in rows)
        assert all(m.recipients == (SIGNER,) for m in box.messages())

        clock.advance(timedelta(hours=3))
        assert one_pass(app).delivery.sent == 0
        assert len(box.messages()) == 5


def test_hanging_server_pass_is_bounded_by_the_socket_timeout(
    app: Flask, clock: FixedClock
) -> None:
    with hanging_server() as port:
        point_mail_at(app, port)
        queue(clock, 3)
        thread, outcome = start_pass(app, timeout=0.5)
        thread.join(5)
        returned_in_time = not thread.is_alive()
    # Leaving the block closed the silent server's sockets, which frees a stuck pass anyway.
    thread.join(5)
    assert returned_in_time, "the pass was still waiting on the silent server after 5 s"
    assert "error" not in outcome, outcome
    assert outcome["elapsed"] < 5
    report = outcome["report"]
    assert (report.delivery.sent, report.delivery.retried) == (0, 3)
    for row in outbox_rows():
        assert (row.state, row.attempts) == ("queued", 1)
        assert row.next_attempt_at == clock.now() + worker.backoff(1)
        assert "timed out" in row.last_error


def test_web_and_business_writes_proceed_while_the_worker_is_stuck(
    app: Flask, clock: FixedClock
) -> None:
    """The worker holds no database lock while it talks SMTP; requests never send mail."""
    with hanging_server() as port:
        point_mail_at(app, port)
        queue(clock, 2)
        thread, outcome = start_pass(app, timeout=3.0)
        try:
            # Claimed rows mean the worker has committed its claim and is now waiting on SMTP.
            wait_until(lambda: states() == ["sending", "sending"])
            started = time.monotonic()
            response = app.test_client().get("/healthz")
            queue(clock, 1, first=100)  # a business transaction that writes an email
            elapsed = time.monotonic() - started
            assert thread.is_alive(), "the worker should still be waiting on the silent server"
        finally:
            thread.join(10)
    assert not thread.is_alive()
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert elapsed < 1.5, elapsed
    # How long the pass itself took is the business of the test above, whose short socket timeout
    # leaves room for a loaded machine; here it only has to end on its own, inside the join.
    assert "error" not in outcome, outcome
    assert outcome["report"].delivery.retried == 2
    # The email queued by the "request" is still waiting for a worker: nothing was sent inline.
    assert states() == ["queued", "queued", "queued"]
    assert [row.attempts for row in outbox_rows()] == [1, 1, 0]


def test_temporary_failure_backs_off_then_delivers(app: Flask, clock: FixedClock) -> None:
    queue(clock, 2)
    with replying_server("451 4.3.0 try later") as (port, handler):
        point_mail_at(app, port)
        report = one_pass(app)
        assert (report.delivery.sent, report.delivery.retried) == (0, 2)
        rows = outbox_rows()
        assert all(row.attempts == 1 for row in rows)
        assert all(row.next_attempt_at == clock.now() + worker.backoff(1) for row in rows)
        assert all("451" in row.last_error and "try later" in row.last_error for row in rows)

        clock.advance(worker.backoff(1))
        report = one_pass(app)
        assert report.delivery.retried == 2
        rows = outbox_rows()
        assert all(row.attempts == 2 for row in rows)
        assert all(row.next_attempt_at == clock.now() + worker.backoff(2) for row in rows)
        assert worker.backoff(2) > worker.backoff(1)
        assert handler.attempts == 4

    with catcher() as box:
        point_mail_at(app, box.port)
        clock.advance(worker.backoff(2) - SECOND)
        assert one_pass(app).delivery.sent == 0
        clock.advance(SECOND)
        assert one_pass(app).delivery.sent == 2
        rows = outbox_rows()
        assert_delivered_once(box, rows)
        assert all(row.attempts == 3 and row.last_error == "" for row in rows)


def test_permanent_failure_is_dead_visible_and_can_be_retried(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner
) -> None:
    [dead_id] = queue(clock, 1, to="nobody@example.com")
    with replying_server("550 5.1.1 no such user") as (port, handler):
        point_mail_at(app, port)
        report = one_pass(app)
        assert (report.delivery.sent, report.delivery.retried, report.delivery.dead) == (0, 0, 1)
        assert handler.attempts == 1
    [row] = outbox_rows()
    assert (row.state, row.attempts) == ("dead", 1)
    assert "550" in row.last_error
    assert "no such user" in row.last_error

    result = runner.invoke(cli, ["outbox", "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "dead 1"
    assert lines[1].startswith(f"dead #{dead_id} to nobody@example.com: {row.subject} — ")
    assert "SMTP 550" in lines[1]
    assert "no such user" in lines[1]

    result = runner.invoke(cli, ["outbox", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["counts"] == {"dead": 1}
    [dead] = status["dead"]
    assert dead["id"] == dead_id
    assert dead["to"] == "nobody@example.com"
    assert dead["subject"] == row.subject
    assert "SMTP 550" in dead["error"]
    assert "no such user" in dead["error"]

    result = runner.invoke(cli, ["outbox", "retry", str(dead_id)])
    assert result.exit_code == 0, result.output
    assert f"message #{dead_id} queued again" in result.output
    [row] = outbox_rows()
    assert (row.state, row.attempts, row.next_attempt_at) == ("queued", 0, clock.now())

    with catcher() as box:
        point_mail_at(app, box.port)
        assert one_pass(app).delivery.sent == 1
        assert len(messages_to(box, "nobody@example.com")) == 1
    assert states() == ["sent"]

    result = runner.invoke(cli, ["outbox", "status", "--json"])
    assert json.loads(result.output) == {"counts": {"sent": 1}, "dead": [], "moot": []}

    for not_dead in (dead_id, dead_id + 1000):
        result = runner.invoke(cli, ["outbox", "retry", str(not_dead)])
        assert result.exit_code == 1
        assert f"no dead-lettered message #{not_dead}" in result.output
    assert states() == ["sent"]


def test_repeated_temporary_failures_dead_letter_after_max_attempts(
    app: Flask, clock: FixedClock
) -> None:
    queue(clock, 1)
    with replying_server("421 4.7.0 too busy") as (port, handler):
        point_mail_at(app, port)
        for attempt in range(1, worker.MAX_ATTEMPTS):
            report = one_pass(app)
            assert (report.delivery.retried, report.delivery.dead) == (1, 0)
            [row] = outbox_rows()
            assert (row.state, row.attempts) == ("queued", attempt)
            assert row.next_attempt_at == clock.now() + worker.backoff(attempt)
            clock.advance(worker.backoff(attempt))
        report = one_pass(app)
        assert (report.delivery.retried, report.delivery.dead) == (0, 1)
        assert handler.attempts == worker.MAX_ATTEMPTS
        [row] = outbox_rows()
        assert (row.state, row.attempts) == ("dead", worker.MAX_ATTEMPTS)
        assert "421" in row.last_error
        clock.advance(worker.BACKOFF_MAX * 2)
        assert one_pass(app).delivery.dead == 0
        assert handler.attempts == worker.MAX_ATTEMPTS
    assert worker.backoff(worker.MAX_ATTEMPTS + 5) == worker.BACKOFF_MAX


def test_row_left_sending_by_a_killed_worker_is_requeued_after_the_lease(
    app: Flask, clock: FixedClock
) -> None:
    orphan_id, _ = queue(clock, 2)
    with unit_of_work(db.session) as session:
        orphan = session.get(OutboxMessage, orphan_id)
        assert orphan is not None
        orphan.state, orphan.claimed_by, orphan.claimed_at = "sending", "killed:1", clock.now()

    with catcher() as box:
        point_mail_at(app, box.port)
        report = one_pass(app)
        assert report.delivery.sent == 1
        assert states() == ["sending", "sent"]

        clock.advance(worker.LEASE - SECOND)
        assert one_pass(app).delivery.sent == 0
        assert states() == ["sending", "sent"]

        clock.advance(2 * SECOND)
        assert one_pass(app).delivery.sent == 1
        rows = outbox_rows()
        assert_delivered_once(box, rows)
        assert rows[0].id == orphan_id
        assert rows[0].claimed_by == "test"  # claimed again by the live worker, then sent

        clock.advance(worker.LEASE * 2)
        assert one_pass(app).delivery.sent == 0
        assert len(box.messages()) == 2


def test_several_workers_deliver_each_message_exactly_once(app: Flask, clock: FixedClock) -> None:
    total, per_transaction, workers = 60, 5, 3
    sender = runtime(app).settings.mail_sender
    producing = threading.Event()
    producing.set()
    errors: list[BaseException] = []

    with catcher() as box:
        point_mail_at(app, box.port)
        mail_state = app.extensions["mail"]

        def work(name: str) -> None:
            with app.app_context():
                try:
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline:
                        still_producing = producing.is_set()
                        report = worker.deliver(
                            db.session,
                            mail_state=mail_state,
                            worker=name,
                            clock=clock,
                            timeout=5.0,
                            sender=sender,
                            limit=4,
                        )
                        assert report.retried == report.dead == 0, report.errors
                        if report.sent == 0:
                            if not still_producing:
                                return
                            time.sleep(0.005)
                except BaseException as exc:  # reported to the main thread
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(workers)]
        for thread in threads:
            thread.start()
        try:
            for first in range(0, total, per_transaction):
                queue(clock, per_transaction, first=first)
        finally:
            producing.clear()
            for thread in threads:
                thread.join(25)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []

        rows = outbox_rows()
        assert len(rows) == total
        assert_delivered_once(box, rows)
        assert all(row.attempts == 1 for row in rows)
        assert {row.claimed_by for row in rows} <= {f"w{n}" for n in range(workers)}


def test_worker_once_cli_delivers_text_and_html(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner
) -> None:
    queue(clock, 2, title="Refunds <b>now</b>")
    previous = signal.getsignal(signal.SIGTERM)  # the command installs its own handler
    try:
        with catcher() as box:
            point_mail_at(app, box.port)
            result = runner.invoke(cli, ["worker", "--once"])
            caught = box.messages()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("sent 2, retrying 0, dead 0;")
    assert states() == ["sent", "sent"]
    assert len(caught) == 2
    message = next(m for m in caught if "rel-0" in m.subject)
    assert message.recipients == (SIGNER,)
    assert message.subject == "Your sign-off link for rel-0 expires x"
    assert "release rel-0 (Refunds <b>now</b>)" in message.text
    assert "http://x" in message.text
    assert "<strong>rel-0</strong>" in message.html
    assert "Refunds &lt;b&gt;now&lt;/b&gt;" in message.html  # HTML email is autoescaped
    assert '<a href="http://x">' in message.html


def test_cr_lf_in_recipient_or_subject_cannot_inject_headers(app: Flask, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        queue_email(
            session,
            to="victim@example.com\r\nBcc: attacker@example.com",
            template="link_expiring",
            context={"package": Package("a", "t"), "expires_at": "x", "resend_url": "http://x"},
            now=clock.now(),
        )
        queue_email(
            session,
            to=SIGNER,
            template="link_expiring",
            context={
                "package": Package("rel\r\nBcc: attacker@example.com\r\nX-Injected: yes", "t"),
                "expires_at": "x",
                "resend_url": "http://x",
            },
            now=clock.now(),
        )
    rows = outbox_rows()
    for row in rows:
        assert not {"\r", "\n"} & set(row.to_address + row.subject), row

    with raw_catcher() as box:
        point_mail_at(app, box.port)
        assert one_pass(app).delivery.sent == 2
    assert len(box.raw) == 2
    for recipients, content in box.raw:
        assert len(recipients) == 1, recipients
        assert "attacker" not in recipients[0]
        headers = email.message_from_bytes(content, policy=email.policy.default)
        assert headers["Bcc"] is None
        assert headers["X-Injected"] is None
        assert headers.get_all("To") is not None
        assert len(headers.get_all("To")) == 1
        assert "attacker" not in str(headers["To"])
        top = content.split(b"\r\n\r\n", 1)[0].lower()
        assert b"\nbcc:" not in top
        assert b"\nx-injected:" not in top
    subject = next(m.subject for m in box.messages() if m.recipients == (SIGNER,))
    assert subject == (
        "Your sign-off link for rel Bcc: attacker@example.com X-Injected: yes expires x"
    )


# --- what arrives: encoding, folding, headers, and batches that cannot finish -----------------


def deliver(app: Flask, clock: FixedClock, *, sender: str) -> worker.DeliveryReport:
    """One batch with a sender of the test's choosing (the settings' is plain ASCII)."""
    return worker.deliver(
        db.session,
        mail_state=app.extensions["mail"],
        worker="test",
        clock=clock,
        timeout=5.0,
        sender=sender,
    )


def queue_for(clock: FixedClock, key: str, *, title: str = "Refunds", to: str = SIGNER) -> int:
    """A link_expiring email whose subject is `Your sign-off link for <key> expires x`."""
    with unit_of_work(db.session) as session:
        row = queue_email(
            session,
            to=to,
            template="link_expiring",
            context={"package": Package(key, title), "expires_at": "x", "resend_url": "http://x"},
            now=clock.now(),
        )
        session.flush()
        return row.id


def write_row(clock: FixedClock, *, to: str, subject: str) -> int:
    """An outbox row written directly, not through queue_email and its header_safe."""
    with unit_of_work(db.session) as session:
        row = OutboxMessage(
            template="link_expiring",
            to_address=to,
            subject=subject,
            body_text="hello\n",
            body_html="<p>hello</p>\n",
            state="queued",
            attempts=0,
            next_attempt_at=clock.now(),
            created_at=clock.now(),
        )
        session.add(row)
        session.flush()
        return row.id


def header_lines(content: bytes) -> list[bytes]:
    """The physical lines of the top-level header block, as sent."""
    return content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def parse(content: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


SUBJECT_ASCII = "Your sign-off link for rel-ascii expires x"


def test_non_ascii_subject_sender_and_bodies_arrive_decoded(app: Flask, clock: FixedClock) -> None:
    key, title = "Zürich-Überweisung – 日本語", "Überweisungen «sofort» ✓"
    sender = "Gätekeeper Zürich <gatekeeper@example.com>"
    queue_for(clock, key, title=title)
    queue_for(clock, "rel-ascii")
    with raw_catcher() as box:
        point_mail_at(app, box.port)
        assert deliver(app, clock, sender=sender).sent == 2
    caught = {m.subject: m for m in box.messages()}
    assert set(caught) == {f"Your sign-off link for {key} expires x", SUBJECT_ASCII}
    message = caught[f"Your sign-off link for {key} expires x"]
    assert f"release {key} ({title})" in message.text
    assert f"<strong>{key}</strong>" in message.html
    assert "Überweisungen «sofort» ✓" in message.html

    message_ids = set()
    for recipients, content in box.raw:
        assert recipients == (SIGNER,)
        lines = header_lines(content)
        assert all(line.isascii() and len(line) <= 78 for line in lines), lines
        parsed = parse(content)
        [author] = parsed["From"].addresses
        assert (author.display_name, author.addr_spec) == (
            "Gätekeeper Zürich",
            "gatekeeper@example.com",
        )
        assert [str(a) for a in parsed["To"].addresses] == [SIGNER]
        assert parsed["Date"].datetime is not None
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(parsed["Message-ID"]))
        message_ids.add(str(parsed["Message-ID"]))
        assert parsed["MIME-Version"] == "1.0"
        assert [part.get_content_type() for part in parsed.walk()] == [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
        ]
        assert all(
            p.get_content_charset() == "utf-8" for p in parsed.walk() if not p.is_multipart()
        )
    assert len(message_ids) == 2


def test_long_subjects_are_folded_and_arrive_whole(app: Flask, clock: FixedClock) -> None:
    words = " ".join(f"word{n}" for n in range(60))  # the subject is cut at 300 characters
    accented = " ".join(f"Zürich–{n}" for n in range(40))
    token = "x" * 250  # no space to fold at: one line, within SMTP's 998
    ids = [queue_for(clock, key) for key in (words, accented, token)]
    expected = {row.id: row.subject for row in outbox_rows()}
    assert all(len(expected[i]) >= 290 for i in ids[:2])
    with raw_catcher() as box:
        point_mail_at(app, box.port)
        assert one_pass(app).delivery.sent == 3
    subjects = {str(parse(content)["Subject"]): content for _, content in box.raw}
    assert set(subjects) == set(expected.values())
    for row_id in ids:
        lines = header_lines(subjects[expected[row_id]])
        start = next(i for i, line in enumerate(lines) if line.startswith(b"Subject:"))
        end = next(i for i in range(start + 1, len(lines)) if not lines[i][:1].isspace())
        folded = lines[start:end]
        assert all(line.isascii() for line in lines)
        if row_id == ids[2]:  # folded at its spaces; the token's own line is as long as it is
            assert all(len(line) <= 998 for line in folded)
        else:
            assert len(folded) >= 4, folded
            assert all(len(line) <= 78 for line in folded), folded


def test_line_breaks_in_a_row_written_around_queue_email_cannot_inject_headers(
    app: Flask, clock: FixedClock
) -> None:
    assert header_safe("a\r\nb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h\x00i") == "a b c d e f g h i"
    write_row(
        clock, to="victim@example.com\r\nBcc: attacker@example.com", subject="Hi\r\nX-Injected: yes"
    )
    write_row(clock, to=SIGNER, subject="Hi\u2028Bcc: attacker@example.com\x85X-Injected: yes")
    write_row(clock, to=SIGNER, subject="Hi\x0bBcc: attacker@example.com\x1cX-Injected: yes")
    with raw_catcher() as box:
        point_mail_at(app, box.port)
        assert one_pass(app).delivery.sent == 3
    assert len(box.raw) == 3
    for recipients, content in box.raw:
        assert len(recipients) == 1
        assert "attacker" not in recipients[0]
        parsed = parse(content)
        assert parsed["Bcc"] is None
        assert parsed["X-Injected"] is None
        assert len(parsed.get_all("To") or []) == 1
        assert "attacker" not in str(parsed["To"])
        assert not [
            line
            for line in header_lines(content)
            if line.lower().startswith((b"bcc", b"x-injected"))
        ]
        assert str(parsed["Subject"]).startswith("Hi ")
        assert "\n" not in str(parsed["Subject"])


def test_bcc_goes_to_the_envelope_and_never_into_the_headers(app: Flask) -> None:
    """The outbox has one recipient per row; Flask-Mail's Bcc must still stay out of the headers."""
    message = worker.OutboxMail(
        subject="Quarterly sign-offs",
        recipients=[SIGNER],
        bcc=["hidden@example.com"],
        body="b",
        html="<p>b</p>",
        sender="Gatekeeper <gatekeeper@example.com>",
    )
    with raw_catcher() as box:
        point_mail_at(app, box.port)
        with worker.TimeoutConnection(app.extensions["mail"], 5.0) as connection:
            connection.send(message)
    [(recipients, content)] = box.raw
    assert sorted(recipients) == ["hidden@example.com", SIGNER]
    assert b"hidden" not in content
    assert parse(content)["Bcc"] is None
    assert str(parse(content)["To"]) == SIGNER


def test_a_message_that_cannot_be_built_is_dead_lettered_and_the_batch_goes_on(
    app: Flask, clock: FixedClock
) -> None:
    first = queue_for(clock, "rel-0")
    bad = queue_for(clock, "rel-1", to="ü@bad..example.com")  # its domain has an empty label
    last = queue_for(clock, "rel-2")
    with catcher() as box:
        point_mail_at(app, box.port)
        report = one_pass(app)
        assert (report.delivery.sent, report.delivery.retried, report.delivery.dead) == (2, 0, 1)
        assert sorted(m.subject for m in box.messages()) == [
            "Your sign-off link for rel-0 expires x",
            "Your sign-off link for rel-2 expires x",
        ]
    rows = {row.id: row for row in outbox_rows()}
    assert (rows[first].state, rows[last].state) == ("sent", "sent")
    assert (rows[bad].state, rows[bad].attempts) == ("dead", 1)
    assert rows[bad].last_error.startswith("cannot build the message: UnicodeError"), rows[bad]


def test_a_batch_stopped_midway_records_what_the_server_accepted(
    app: Flask, clock: FixedClock
) -> None:
    """Sent means accepted; an accepted message not yet recorded goes out again, none is lost."""
    ids = queue(clock, 5)
    dispatched: list[str] = []

    def crash_after_third(sender: Any, **extra: Any) -> None:
        dispatched.append(extra["message"].subject)
        if len(dispatched) == 3:
            raise RuntimeError("the worker stopped")

    with catcher() as box:
        point_mail_at(app, box.port)
        with (
            email_dispatched.connected_to(crash_after_third),
            pytest.raises(RuntimeError, match="the worker stopped"),
        ):
            deliver(app, clock, sender=runtime(app).settings.mail_sender)
        assert len(box.messages()) == 3  # the server accepted three; the third is not recorded
        rows = outbox_rows()
        assert [row.id for row in rows] == ids
        assert [(row.state, row.attempts) for row in rows] == [("sent", 1)] * 2 + [
            ("queued", 0)
        ] * 3
        assert all(row.claimed_by is None for row in rows[2:])

        assert one_pass(app).delivery.sent == 3
        rows = outbox_rows()
        assert all(row.state == "sent" for row in rows)
        caught = subjects(box)
        assert set(caught) == {row.subject for row in rows}
        assert [n for n in caught.values() if n > 1] == [2]  # only the unrecorded one, twice

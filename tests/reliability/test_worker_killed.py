"""The mail worker killed (SIGKILL) after the SMTP server accepted its messages and before it
marked them sent: after the lease the messages go out again, and the sign-off link they carry
still works exactly once.

The kill is real: the worker runs in its own process against the test's database and a real SMTP
server on loopback. That server accepts every message (250 to DATA) and then never answers QUIT,
which is the moment between "sent" and "recorded as sent": every message is in the mailbox and no
row is marked. The test kills the process there."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, Signoff, SignoffLink
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify import worker
from gatekeeper.notify.catcher import MailCatcher
from tests.conftest import REPO, clean_environ
from tests.functional.web_helpers import client, fresh_csrf
from tests.reliability.killable_worker import WORKER_ID
from tests.support.flows import prepare
from tests.support.link_forms import sign_link
from tests.support.mail import (
    catcher,
    link_in,
    messages_to,
    point_mail_at,
    run_worker,
    smtp_server,
)

pytestmark = pytest.mark.reliability

SIGNER = "raj@example.com"  # three items of payments-api on one link
ITEMS = ("artifacts-from-ci", "migrations-reversible", "rollback-plan")
SECOND = timedelta(seconds=1)
WAIT = 60.0


@dataclass
class StallAtQuit:
    """Accepts every message into `box`, then holds QUIT until released."""

    box: MailCatcher
    quit_received: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.add(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quit_received.set()
        while not self.released.is_set():
            await asyncio.sleep(0.02)
        return "221 Bye"


@contextmanager
def stalling_smtp() -> Iterator[tuple[int, StallAtQuit]]:
    """Our server in front; an idle catcher behind it parses and keeps what it accepts."""
    with catcher() as box:
        handler = StallAtQuit(box)
        with smtp_server(handler) as port:
            try:
                yield port, handler
            finally:
                handler.released.set()


def outbox() -> list[tuple[str, str, str | None]]:
    db.session.remove()
    rows = [
        (row.to_address, row.state, row.claimed_by)
        for row in db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.template == "signoff_request")
            .order_by(OutboxMessage.id)
        )
    ]
    db.session.remove()
    return rows


def test_a_worker_killed_between_smtp_and_marking_sent_resends_and_the_link_works_once(
    app: Flask, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    prepare(app, clock)
    asked = sorted(address for address, _, _ in outbox())
    assert SIGNER in asked
    db.session.remove()
    with stalling_smtp() as (port, server):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.killable_worker",
                database_url,
                str(tmp_path / "worker-instance"),
                str(port),
                clock.now().isoformat(),
            ],
            cwd=REPO,
            env={**clean_environ(), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert server.quit_received.wait(WAIT), "the worker never finished sending"
            os.kill(process.pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(WAIT)
        assert process.returncode == -signal.SIGKILL, output.decode(errors="replace")

        # Every message reached the server, and not one row knows it.
        first = server.box.messages()
        assert sorted(r for m in first for r in m.recipients) == asked
        assert {(state, claimed) for _, state, claimed in outbox()} == {("sending", WORKER_ID)}

        # Another worker (this process) leaves the rows alone while the lease runs...
        server.released.set()
        point_mail_at(app, port)
        clock.advance(worker.LEASE - SECOND)
        assert run_worker(app).delivery.sent == 0
        assert {state for _, state, _ in outbox()} == {"sending"}
        assert len(server.box.messages()) == len(asked)
        # ...and sends them again once it is over.
        clock.advance(2 * SECOND)
        assert run_worker(app).delivery.sent == len(asked)
        assert {(state, claimed) for _, state, claimed in outbox()} == {("sent", "test")}
        mails = [m for m in messages_to(server.box, SIGNER) if "Sign-off needed" in m.subject]
        assert len(mails) == 2, "the message went out a second time"
        resent, original = (urlsplit(link_in(m)).path for m in mails)  # newest first
        assert resent == original, "both copies carry the same link"

        # The link works once...
        browser = client(app)
        done = sign_link(browser, resent)
        assert done.status_code == 200, done.text
        db.session.remove()
        signed = db.session.scalars(sa.select(Signoff.item_id).where(Signoff.signer == SIGNER))
        assert sorted(map(str, signed)) == [
            "artifacts-from-ci",
            "migrations-reversible",
            "rollback-plan",
        ]
        # ...and only once, whichever copy of the email is opened or used again.
        for path in (resent, original):
            opened = browser.get(path)
            assert opened.status_code == 410, opened.text
            assert "Already answered" in opened.text
            again = browser.post(path, data={"csrf_token": fresh_csrf(browser)})
            assert again.status_code == 410, again.text
            assert "Already answered" in again.text
        db.session.remove()
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Signoff).where(Signoff.signer == SIGNER)
        ) == len(ITEMS)
        assert (
            db.session.scalar(sa.select(SignoffLink.state).where(SignoffLink.signer == SIGNER))
            == "used"
        )
        db.session.remove()

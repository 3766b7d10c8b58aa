"""A 550, a slow mail server and a dead letter retried by hand: each message is delivered once.

How it went wrong: a worker claims a batch and records every outcome when the batch is done.
A server that slows down after refusing a recipient (tarpitting) stretched the batch past the
lease, so another worker took the same rows and sent them again; and when the first worker
finally recorded its outcomes it wrote them over whatever had happened since, turning a dead
letter that had been retried and delivered back into a dead letter, to be retried (and
delivered) again. Now a batch stops starting messages once half its lease has gone, and a
worker records outcomes only for rows it still holds.

Real workers against a real SMTP server (aiosmtpd on loopback); the server's slowness is the
injected clock moving while it answers."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify import worker
from gatekeeper.services.mail_worker import PassReport
from tests.support.mail import point_mail_at, queue, run_worker, smtp_server

pytestmark = pytest.mark.reliability

BOUNCED = "bounced@example.com"  # refused with 550 until the address is "fixed"
OTHERS = ("ok-1@example.com", "ok-2@example.com")
SECOND = timedelta(seconds=1)


@dataclass
class SlowServer:
    """Refuses BOUNCED with 550 while `refusing`; each answer takes `step` on the clock;
    `on_data(recipient)` may run before a message is accepted. Counts what it accepted."""

    clock: FixedClock
    step: timedelta
    refusing: bool = True
    delivered: Counter[str] = field(default_factory=Counter)
    on_data: Callable[[str], Any] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refusing and address == BOUNCED:
            self.clock.advance(self.step)
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        [recipient] = envelope.rcpt_tos
        self.clock.advance(self.step)
        if self.on_data is not None:
            waiting = self.on_data(recipient)
            if waiting is not None:
                await waiting
        self.delivered[recipient] += 1
        return "250 Message accepted for delivery"


def in_thread(app: Flask, job: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        with app.app_context():
            try:
                job()
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def until(done: Callable[[], bool]) -> None:
    for _ in range(3000):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def outbox() -> dict[str, str]:
    db.session.remove()
    found = {m.to_address: m.state for m in db.session.scalars(sa.select(OutboxMessage))}
    db.session.remove()
    return found


def retry_dead_letters(clock: FixedClock) -> int:
    """What an admin does after fixing the address: retry every dead letter."""
    with unit_of_work(db.session) as session:
        dead = [m.id for m in worker.dead_letters(session)]
        for message_id in dead:
            worker.requeue(session, message_id, clock=clock)
    return len(dead)


def queue_batch(clock: FixedClock) -> None:
    queue(clock, 1, to=BOUNCED)
    for address in OTHERS:
        queue(clock, 1, to=address)


def test_a_batch_slowed_past_its_lease_is_never_sent_twice(app: Flask, clock: FixedClock) -> None:
    """Every answer of the server takes 40% of the lease, and another worker polls while each
    message goes through: it must never find rows to take from the worker that is sending."""
    queue_batch(clock)
    server = SlowServer(clock, step=worker.LEASE * 0.4)
    rival: list[PassReport] = []
    polling = threading.Event()

    def another_worker_polls(_recipient: str) -> Any:
        if polling.is_set():  # this message is the other worker's own
            return None
        polling.set()
        thread = in_thread(app, lambda: rival.append(run_worker(app, worker_id="rival")))

        async def finished() -> None:
            await until(lambda: not thread.is_alive())
            polling.clear()

        return finished()

    server.on_data = another_worker_polls
    with smtp_server(server) as port:
        point_mail_at(app, port)
        run_worker(app)
        server.refusing = False
        assert retry_dead_letters(clock) == 1
        clock.advance(SECOND)
        run_worker(app)
    assert server.delivered == dict.fromkeys((BOUNCED, *OTHERS), 1)
    assert outbox() == dict.fromkeys((BOUNCED, *OTHERS), "sent")
    assert rival, "the other worker polled"
    assert all(r.delivery.sent == r.delivery.dead == 0 for r in rival), "it never took a row"


def test_a_worker_that_lost_its_rows_does_not_record_over_the_new_owner(
    app: Flask, clock: FixedClock
) -> None:
    """The first worker stalls inside one message for longer than the lease; another worker
    sends the batch, the dead letter is retried and delivered. When the first worker wakes up,
    its outcomes (that 550) must not undo any of it."""
    queue_batch(clock)
    stalled, released = threading.Event(), threading.Event()
    server = SlowServer(clock, step=timedelta(0))

    def stall_the_first_message(recipient: str) -> Any:
        if stalled.is_set() or recipient != OTHERS[0]:
            return None
        stalled.set()
        return until(released.is_set)

    server.on_data = stall_the_first_message
    with smtp_server(server) as port:
        point_mail_at(app, port)
        first = in_thread(app, lambda: run_worker(app, worker_id="stalled"))
        assert stalled.wait(30)
        clock.advance(worker.LEASE + SECOND)
        report = run_worker(app, worker_id="rival")
        assert (report.delivery.sent, report.delivery.dead) == (2, 1)
        server.refusing = False
        assert retry_dead_letters(clock) == 1
        assert run_worker(app, worker_id="rival").delivery.sent == 1
        released.set()
        first.join(30)
        assert not first.is_alive()
    assert outbox() == dict.fromkeys((BOUNCED, *OTHERS), "sent")
    assert worker.dead_letters(db.session) == []
    # Sent once each, but for the message the first worker was inside when its lease ran out:
    # at least once by design (see the README's mail worker section).
    assert server.delivered == {BOUNCED: 1, OTHERS[0]: 2, OTHERS[1]: 1}

"""The worker killed (SIGKILL) after a webhook receiver accepted a post and before the worker
recorded it: after the lease the webhook is posted again with the same webhook-id, so the
receiver can drop the duplicate, and nothing is lost.

The kill is real: the worker runs in its own process against the test's database and a real
HTTP receiver on loopback. The receiver keeps each post, then holds its answer: every post has
arrived and no row knows it. The test kills the process there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify import worker
from gatekeeper.runtime import runtime
from gatekeeper.services import webhooks
from tests.conftest import REPO, clean_environ, dispose, make_app
from tests.reliability.killable_webhook_worker import WORKER_ID
from tests.support.flows import prepare
from tests.support.mail import run_worker

pytestmark = pytest.mark.reliability

SECOND = timedelta(seconds=1)
WAIT = 60.0


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Flask]:
    app = make_app(
        database_url, tmp_path / "instance", clock, GATEKEEPER_WEBHOOK_ALLOW_PRIVATE="true"
    )
    with app.app_context():
        yield app
    dispose(app)


class HoldingReceiver:
    """Keeps every post; holds its answer to the first until released."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        self.arrived = threading.Event()
        self.released = threading.Event()

    def __call__(self, request: Request) -> Response:
        self.posts.append((request.headers["webhook-id"], request.get_data(as_text=True)))
        self.arrived.set()
        self.released.wait(WAIT)
        return Response("", status=204)


def hook_rows() -> list[tuple[str, str | None, str | None]]:
    db.session.remove()
    rows = [
        (r.state, r.claimed_by, r.webhook_id)
        for r in db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
    ]
    db.session.remove()
    return rows


def test_a_worker_killed_after_the_receiver_accepted_posts_again_with_the_same_id(
    app: Flask, clock: FixedClock, database_url: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    receiver = HoldingReceiver()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    rt = runtime(app)
    with unit_of_work(db.session) as session:
        webhooks.add_subscription(
            session,
            url=f"http://127.0.0.1:{httpserver.port}/hook",
            events=["package.submitted"],
            actor="admin@example.com",
            clock=clock,
            settings=rt.webhook_settings(),
        )
    prepare(app, clock)
    ((_, _, webhook_id),) = hook_rows()
    db.session.remove()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.killable_webhook_worker",
            database_url,
            str(tmp_path / "worker-instance"),
            clock.now().isoformat(),
        ],
        cwd=REPO,
        env={**clean_environ(), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert receiver.arrived.wait(WAIT), "the worker never posted"
        os.kill(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=WAIT)
    finally:
        receiver.released.set()
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
    assert process.returncode == -signal.SIGKILL, output.decode(errors="replace")

    # The receiver has it, and the row does not know.
    assert [wid for wid, _ in receiver.posts] == [webhook_id]
    assert hook_rows() == [("sending", WORKER_ID, webhook_id)]

    # Another worker leaves the row alone while the lease runs...
    clock.advance(worker.LEASE - SECOND)
    assert run_worker(app).webhooks.handled == 0
    assert hook_rows() == [("sending", WORKER_ID, webhook_id)]
    # ...and posts it again once it is over: the same webhook-id and the same body.
    clock.advance(2 * SECOND)
    assert run_worker(app).webhooks.sent == 1
    assert hook_rows() == [("sent", None, webhook_id)]
    assert len(receiver.posts) == 2
    (first_id, first_body), (second_id, second_body) = receiver.posts
    assert first_id == second_id == webhook_id
    assert first_body == second_body

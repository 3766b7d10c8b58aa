"""`gatekeeper worker --healthcheck`: healthy only while a worker on this host beat recently."""

from __future__ import annotations

import signal
import socket
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.domain.clock import FixedClock
from tests.support.mail import catcher, point_mail_at


def test_healthcheck_follows_the_heartbeat(
    app: Flask, clock: FixedClock, runner: FlaskCliRunner
) -> None:
    never = runner.invoke(cli, ["worker", "--healthcheck"])
    assert never.exit_code == 1
    assert never.output.strip() == f"unhealthy: no worker has run on host {socket.gethostname()}"

    previous = signal.getsignal(signal.SIGTERM)  # the command installs its own handler
    try:
        with catcher() as box:
            point_mail_at(app, box.port)
            assert runner.invoke(cli, ["worker", "--once"]).exit_code == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    fresh = runner.invoke(cli, ["worker", "--healthcheck"])
    assert fresh.exit_code == 0, fresh.output
    assert fresh.output.startswith(f"healthy: worker {socket.gethostname()}:")

    clock.advance(timedelta(seconds=61))
    stale = runner.invoke(cli, ["worker", "--healthcheck"])
    assert stale.exit_code == 1
    assert "last made progress 61 s ago (limit 60 s)" in stale.output
    assert runner.invoke(cli, ["worker", "--healthcheck", "--max-age", "120"]).exit_code == 0


def test_healthcheck_runs_no_pass_and_takes_no_pass_options(runner: FlaskCliRunner) -> None:
    assert runner.invoke(cli, ["worker", "--healthcheck", "--once"]).exit_code == 2
    assert runner.invoke(cli, ["worker", "--max-age", "5"]).exit_code == 2

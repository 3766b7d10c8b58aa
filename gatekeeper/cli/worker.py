"""`gatekeeper worker`: the one process that talks to the outside — outbox email over SMTP,
webhooks over HTTP, reminders, expiry."""

from __future__ import annotations

import os
import signal
import socket
import threading

import click
import sqlalchemy as sa
from flask import Flask

from gatekeeper.cli.app_loading import load_app
from gatekeeper.cli.options import one_of
from gatekeeper.db.base import db
from gatekeeper.runtime import runtime
from gatekeeper.services import mail_worker


def worker_pass(app: Flask, worker_id: str) -> mail_worker.PassReport:
    rt = runtime(app)
    with app.app_context():
        try:
            return mail_worker.worker_pass(
                db.session,
                mail_state=app.extensions["mail"],
                worker_id=worker_id,
                clock=rt.clock,
                timeout=rt.settings.mail_timeout,
                sender=rt.settings.mail_sender,
                links=rt.link_settings(),
                governance=rt.governance_settings(),
                hooks=rt.webhook_settings(),
                gate=rt.deployment_gate_settings(),
                calls=rt.platform_settings(),
            )
        finally:
            db.session.remove()


@click.command("worker")
@click.option(
    "--once", is_flag=True, help="one pass (deliver, remind, expire), then exit: for cron"
)
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="seconds between passes"
)
@click.pass_context
def command(ctx: click.Context, once: bool, interval: float) -> None:
    """Deliver queued email and webhooks (with retries), send reminders and escalations, warn
    of expiry."""
    one_of(ctx, "once", "interval")  # --interval is the pause between passes; --once makes one
    app = load_app(ctx)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        try:
            report = worker_pass(app, worker_id)
        except sa.exc.OperationalError as exc:
            click.echo(f"database unavailable, will retry: {exc.orig}", err=True)
        else:
            delivery, posted, called = report.delivery, report.webhooks, report.platform_calls
            if (
                once
                or delivery.sent
                or delivery.retried
                or delivery.dead
                or posted.handled
                or called.handled
                or any(report.reminders.values())
            ):
                click.echo(
                    f"sent {delivery.sent}, retrying {delivery.retried}, dead {delivery.dead}; "
                    + ", ".join(f"{k} {v}" for k, v in report.reminders.items())
                    + (
                        f"; webhooks delivered {posted.sent}, retrying {posted.retried}, "
                        f"dead {posted.dead}"
                        if posted.handled
                        else ""
                    )
                    + (
                        f"; CI platform calls made {called.sent}, retrying {called.retried}, "
                        f"dead {called.dead}"
                        if called.handled
                        else ""
                    )
                )
            for error in [*delivery.errors, *posted.errors, *called.errors, *report.errors]:
                click.echo(f"  {error}", err=True)
        if once or stop.wait(interval):
            return

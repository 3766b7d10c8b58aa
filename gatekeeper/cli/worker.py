"""`gatekeeper worker`: the one process that talks to the outside — outbox email over SMTP,
webhooks over HTTP, reminders, expiry."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import Flask

from gatekeeper.cli.app_loading import load_app
from gatekeeper.cli.options import one_of
from gatekeeper.db.base import db
from gatekeeper.runtime import runtime
from gatekeeper.services import heartbeats, mail_worker

# --healthcheck: a worker idles `--interval` (5 s) between passes and beats after every batch,
# which takes at most SENDING_TIME; a minute without a beat means it is stuck or gone.
DEFAULT_MAX_AGE = 60.0


def worker_pass(
    app: Flask, worker_id: str, heartbeat: heartbeats.Heartbeat | None = None
) -> mail_worker.PassReport:
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
                heartbeat=heartbeat,
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
@click.option(
    "--healthcheck",
    is_flag=True,
    help="for process supervisors: exit 0 if a worker on this host made progress within "
    "--max-age, else 1 with the reason; runs no pass",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    default=DEFAULT_MAX_AGE,
    show_default=True,
    help="with --healthcheck: seconds a heartbeat stays fresh",
)
@click.pass_context
def command(
    ctx: click.Context, once: bool, interval: float, healthcheck: bool, max_age: float
) -> None:
    """Deliver queued email and webhooks (with retries), send reminders and escalations, warn
    of expiry."""
    one_of(ctx, "once", "interval")  # --interval is the pause between passes; --once makes one
    one_of(ctx, "healthcheck", "once")
    one_of(ctx, "healthcheck", "interval")
    if (
        ctx.get_parameter_source("max_age")
        in (
            click.core.ParameterSource.COMMANDLINE,
            click.core.ParameterSource.ENVIRONMENT,
        )
        and not healthcheck
    ):
        raise click.UsageError("--max-age goes with --healthcheck", ctx)
    app = load_app(ctx)
    host = socket.gethostname()
    if healthcheck:
        _healthcheck(app, host, timedelta(seconds=max_age))
        return
    worker_id = f"{host}:{os.getpid()}"
    heartbeat = heartbeats.Heartbeat(worker_id, host, runtime(app).clock.now())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        try:
            report = worker_pass(app, worker_id, heartbeat)
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


def _healthcheck(app: Flask, host: str, max_age: timedelta) -> None:
    with app.app_context():
        try:
            health = heartbeats.check(
                db.session, host=host, max_age=max_age, now=runtime(app).clock.now()
            )
        except sa.exc.SQLAlchemyError as exc:
            health = heartbeats.Health(False, f"database unavailable: {exc.__class__.__name__}")
        finally:
            db.session.remove()
    click.echo(("healthy: " if health.healthy else "unhealthy: ") + health.reason)
    if not health.healthy:
        sys.exit(1)

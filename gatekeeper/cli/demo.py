"""`gatekeeper demo`: the whole product on the embedded defaults, with a mail catcher."""

from __future__ import annotations

import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade as migrate_upgrade
from werkzeug.serving import run_simple

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.cli.checklists import sync_checklists
from gatekeeper.cli.worker import worker_pass
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.notify.worker import mail
from gatekeeper.runtime import runtime
from gatekeeper.web import mailbox
from gatekeeper.web.serving import RedactingRequestHandler

REPO_CHECKLISTS = Path(__file__).resolve().parents[2] / "checklists"


@click.command("demo")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--smtp-port", default=8025, show_default=True, type=int, help="the mail catcher")
@click.option("--no-serve", is_flag=True, help="prepare the demo data and exit")
@reports_errors
@with_appcontext
def command(port: int, host: str, smtp_port: int, no_serve: bool) -> None:
    """Run the whole product locally: SQLite, sample data, mail catcher, worker, web app."""
    from gatekeeper.services import demo, demo_governance

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    migrate_upgrade()
    source = Path("checklists") if Path("checklists").is_dir() else REPO_CHECKLISTS
    instance = Path(app.instance_path)
    # The demo names its author; the history of the samples (maybe a shallow clone) is not
    # what the demo's reviewers approve.
    for outcome in sync_checklists(
        demo_governance.sync_source(db.session, source, instance),
        "demo-author@example.com",
        read_git=False,
    ):
        click.echo(f"checklist {outcome.application} v{outcome.version}: {outcome.status}")
    with unit_of_work(db.session) as session:
        for line in demo.prepare(
            session, clock=runtime(app).clock, links=runtime(app).link_settings()
        ):
            click.echo(line)
        for line in demo_governance.prepare(
            session,
            clock=runtime(app).clock,
            governance=runtime(app).governance_settings(),
            samples=source,
            instance=instance,
        ):
            click.echo(line)
    click.echo(f"database: {app.config['SQLALCHEMY_DATABASE_URI']}")
    click.echo(f"try: gatekeeper gate check {demo.DEMO_PACKAGE}")
    if no_serve:
        return
    catcher = MailCatcher(port=smtp_port)
    catcher.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=catcher.port)
    app.extensions["mail"] = mail.init_app(app)
    mailbox.attach(app.extensions, catcher)
    stop = threading.Event()
    thread = threading.Thread(target=_demo_worker, args=(app, stop), daemon=True)
    thread.start()
    click.echo(f"Gatekeeper demo on http://{host}:{port}/  (Ctrl+C to stop)")
    click.echo(f"mailbox (every email the demo sends): http://{host}:{port}/dev/mailbox/")
    click.echo(
        f"sign in: http://{host}:{port}/login as {demo.DEMO_RELEASE_MANAGER} "
        "(the sign-in link arrives in the mailbox)"
    )
    try:
        run_simple(host, port, app, threaded=True, request_handler=RedactingRequestHandler)
    finally:
        stop.set()
        thread.join(10)
        catcher.stop()


def _demo_worker(app: Flask, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            worker_pass(app, "demo")
        except Exception as exc:
            click.echo(f"demo worker: {exc}", err=True)
        stop.wait(2)

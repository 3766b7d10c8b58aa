"""`gatekeeper demo`: the whole product on the embedded defaults, with a mail catcher."""

from __future__ import annotations

import errno
import shutil
import socket
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click
from flask import Flask
from flask_migrate import upgrade as migrate_upgrade
from werkzeug.serving import make_server, select_address_family

from gatekeeper.cli.app_loading import load_app, reports_errors
from gatekeeper.cli.worker import worker_pass
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.notify.worker import mail
from gatekeeper.runtime import runtime
from gatekeeper.settings import DEMO_BASE_URL_FILE
from gatekeeper.web import mailbox
from gatekeeper.web.serving import RedactingRequestHandler

REPO_CHECKLISTS = Path(__file__).resolve().parents[2] / "checklists"
# Exit status when the web or SMTP port is taken (documented in the README's command table).
PORT_TAKEN = 2
DEFAULT_HOST = SMTP_HOST = "127.0.0.1"
# Hosts that mean "every interface": links need an address a browser can open.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 - compared against, never bound here


class PortTaken(click.ClickException):
    exit_code = PORT_TAKEN


@click.command("demo")
@click.option(
    "--port", default=5000, show_default=True, type=int, help="the web app; emailed links use it"
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="the address to listen on")
@click.option("--smtp-port", default=8025, show_default=True, type=int, help="the mail catcher")
@click.option("--no-serve", is_flag=True, help="prepare the demo data and exit")
@click.pass_context
@reports_errors
def command(ctx: click.Context, port: int, host: str, smtp_port: int, no_serve: bool) -> None:
    """Run the whole product locally: SQLite, sample data, mail catcher, worker, web app."""
    if no_serve:
        app = load_app(ctx)
        with app.app_context():
            _prepare(app, host, port)
        return
    # Both ports are taken before anything is written or printed: a clash ends the command
    # with one line saying which options to use instead, not halfway through.
    with _listening(host, port, smtp_port) as (listener, catcher):
        app = load_app(ctx)
        with app.app_context():
            _prepare(app, host, port)
        _serve(app, listener, catcher, host, port)


def _prepare(app: Flask, host: str, port: int) -> None:
    from gatekeeper.services import (
        demo,
        demo_emergency,
        demo_escapes,
        demo_freezes,
        demo_governance,
        demo_learning,
    )

    base_url = _link_base(app, host, port)
    rt = runtime(app)
    migrate_upgrade()
    source = Path("checklists") if Path("checklists").is_dir() else REPO_CHECKLISTS
    instance = Path(app.instance_path)
    with unit_of_work(db.session) as session:
        for line in demo.prepare(
            session,
            clock=rt.clock,
            links=rt.link_settings(),
            governance=rt.governance_settings(),
            samples=source,
            instance=instance,
        ):
            click.echo(line)
        for line in demo_governance.prepare(
            session, clock=rt.clock, governance=rt.governance_settings(), instance=instance
        ):
            click.echo(line)
        for line in demo_escapes.prepare(
            session, clock=rt.clock, governance=rt.governance_settings(), instance=instance
        ):
            click.echo(line)
        for line in demo_freezes.prepare(session, clock=rt.clock, instance=instance):
            click.echo(line)
        for line in demo_learning.prepare(
            session, clock=rt.clock, governance=rt.governance_settings(), instance=instance
        ):
            click.echo(line)
        for line in demo_emergency.prepare(session, clock=rt.clock, links=rt.link_settings()):
            click.echo(line)
    click.echo(f"database: {app.config['SQLALCHEMY_DATABASE_URI']}")
    click.echo(f"emailed links point at {base_url}/")
    click.echo(f"try: {_console_script()} gate check {demo.DEMO_PACKAGE}")


def _link_base(app: Flask, host: str, port: int) -> str:
    """The URL emailed links start with: where the demo serves, unless GATEKEEPER_BASE_URL says
    otherwise (a proxy in front, say). Set before any email is written: links are built then,
    and the other commands run in this directory are told too."""
    rt = runtime(app)
    if "GATEKEEPER_BASE_URL" in rt.settings.configured:
        return rt.settings.base_url
    if host in WILDCARD_HOSTS:
        click.echo(
            "serving on every interface; emailed links use 127.0.0.1 (set GATEKEEPER_BASE_URL "
            "to the address others reach this machine by)"
        )
        host = DEFAULT_HOST
    settings = replace(rt.settings, base_url=_http_url(host, port))
    app.extensions["gatekeeper"] = replace(rt, settings=settings)
    # Remembered for the other commands run here (`checklists sync` emails review links too).
    remembered = Path(app.instance_path) / DEMO_BASE_URL_FILE
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(settings.base_url + "\n", encoding="utf-8")
    return settings.base_url


def _http_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _console_script() -> str:
    """How to type `gatekeeper` so it runs this installation: the README installs into .venv,
    which is not on PATH, so a bare `gatekeeper` would not be found (or be another one)."""
    running = Path(sys.argv[0])
    if running.name != "gatekeeper":
        running = Path(sysconfig.get_path("scripts")) / "gatekeeper"
    if not running.is_file():
        return "gatekeeper"
    found = shutil.which("gatekeeper")
    if found and Path(found).resolve() == running.resolve():
        return "gatekeeper"
    try:
        return str(running.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(running.absolute())


@contextmanager
def _listening(host: str, port: int, smtp_port: int) -> Iterator[tuple[socket.socket, MailCatcher]]:
    """The web port bound (and held: nothing can take it between this check and serving) and
    the mail catcher started on its port; PortTaken names free ones to use instead."""
    listener = _bind(host, port)
    smtp_free = _is_free(SMTP_HOST, smtp_port)
    if listener is None or not smtp_free:
        if listener is not None:
            listener.close()
        raise PortTaken(
            _taken_message(
                host, port, smtp_port, web_free=listener is not None, smtp_free=smtp_free
            )
        )
    try:
        catcher = MailCatcher(host=SMTP_HOST, port=smtp_port)
        catcher.start()
        try:
            yield listener, catcher
        finally:
            catcher.stop()
    finally:
        listener.close()


def _bind(host: str, port: int) -> socket.socket | None:
    """A listening socket on host:port, or None when something else listens there."""
    listener = socket.socket(select_address_family(host, port), socket.SOCK_STREAM)
    # As the servers themselves do: a port only in TIME_WAIT from an earlier run is free.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            return None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return listener


def _is_free(host: str, port: int) -> bool:
    probe = _bind(host, port)
    if probe is None:
        return False
    probe.close()
    return True


def _taken_message(host: str, port: int, smtp_port: int, *, web_free: bool, smtp_free: bool) -> str:
    """Which port is in use, and a command line with free ports that works as printed."""
    taken = []
    if not web_free:
        taken.append(f"the web port {port} on {host}")
        port = _next_free(host, port, avoid=smtp_port)
    if not smtp_free:
        taken.append(f"the mail catcher port {smtp_port}")
        smtp_port = _next_free(SMTP_HOST, smtp_port, avoid=port)
    host_option = f" --host {host}" if host != DEFAULT_HOST else ""
    return (
        f"{' and '.join(taken)} {'are' if len(taken) > 1 else 'is'} in use (is a demo already "
        f"running?); choose free ports, e.g.: {_console_script()} demo{host_option} "
        f"--port {port} --smtp-port {smtp_port}"
    )


def _next_free(host: str, port: int, *, avoid: int) -> int:
    """The first free port after `port` (near the one asked for, easy to remember)."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        if candidate != avoid and _is_free(host, candidate):
            return candidate
    with socket.socket(select_address_family(host, 0), socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def _serve(app: Flask, listener: socket.socket, catcher: MailCatcher, host: str, port: int) -> None:
    from gatekeeper.services.demo import DEMO_RELEASE_MANAGER

    app.config.update(MAIL_SERVER=SMTP_HOST, MAIL_PORT=catcher.port)
    app.extensions["mail"] = mail.init_app(app)
    mailbox.attach(app.extensions, catcher)
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=RedactingRequestHandler,
        fd=listener.fileno(),
    )
    stop = threading.Event()
    thread = threading.Thread(target=_demo_worker, args=(app, stop), daemon=True)
    thread.start()
    base = runtime(app).settings.base_url
    click.echo(f"Gatekeeper demo on {_http_url(host, port)}/  (Ctrl+C to stop)")
    click.echo(f"mailbox (every email the demo sends): {base}/dev/mailbox/")
    click.echo(
        f"sign in: {base}/login as {DEMO_RELEASE_MANAGER} (the sign-in link arrives in the mailbox)"
    )
    try:
        server.serve_forever()
    finally:
        stop.set()
        thread.join(10)


def _demo_worker(app: Flask, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            worker_pass(app, "demo")
        except Exception as exc:
            click.echo(f"demo worker: {exc}", err=True)
        stop.wait(2)

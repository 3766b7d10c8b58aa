"""The `gatekeeper` console script: a FlaskGroup whose commands are thin adapters over services."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from flask import Flask, current_app, render_template
from flask.cli import FlaskGroup, ScriptInfo
from flask_migrate import upgrade as migrate_upgrade
from flask_migrate.cli import db as db_commands
from werkzeug.serving import run_simple

from gatekeeper import gate_client
from gatekeeper.app import create_app, runtime
from gatekeeper.db import backup as db_backup
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import governance
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.errors import GatekeeperError, NotFound
from gatekeeper.notify import worker
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.notify.worker import mail
from gatekeeper.services import (
    audit,
    checklists,
    evidence,
    mail_worker,
    packages,
    reviews,
    tokens,
    users,
)
from gatekeeper.settings import SettingsError
from gatekeeper.signing import badge_signature
from gatekeeper.web import mailbox
from gatekeeper.web.serving import RedactingRequestHandler

F = TypeVar("F", bound=Callable[..., Any])
REPO_CHECKLISTS = Path(__file__).resolve().parent.parent / "checklists"


def _create_app() -> Flask:
    try:
        return create_app()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def reports_errors(command: F) -> F:
    """Turn domain errors into a one-line message and exit status 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChecklistInvalid as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            raise SystemExit(1) from None
        except GatekeeperError as exc:
            click.echo(f"error: {exc.message}", err=True)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


cli = FlaskGroup(
    create_app=_create_app,
    add_version_option=False,
    help="Gatekeeper: release-gate checklists, sign-offs, and the gate CI asks before deploying.",
)
cli.add_command(db_commands, "db")


def main() -> None:
    cli.main(prog_name="gatekeeper")


@cli.group("checklists")
def checklists_group() -> None:
    """Validate, load and review checklist files."""


@checklists_group.command("lint", with_appcontext=False)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text")
def lint_command(paths: tuple[Path, ...], output: str) -> None:
    """Validate checklist files without a database. Exit 0 when all are valid, 1 otherwise."""
    report = checklists.lint_paths(paths or (Path("checklists"),))
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "files": [
                        {
                            "path": f.path,
                            "ok": not f.problems,
                            "application": f.checklist.application if f.checklist else None,
                            "version": f.checklist.version if f.checklist else None,
                            "problems": [p.to_dict() for p in f.problems],
                        }
                        for f in report.files
                    ],
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            click.echo(str(problem))
        valid = sum(1 for f in report.files if not f.problems)
        if not report.files:
            click.echo("no checklist files (*.yaml, *.yml) found", err=True)
        else:
            click.echo(
                f"{valid} of {len(report.files)} checklist file(s) valid, "
                f"{len(report.problems)} problem(s)",
                err=True,
            )
    sys.exit(0 if report.ok else 1)


@checklists_group.command("schema", with_appcontext=False)
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of the checklist format, for editors."""
    from gatekeeper.checklist_format.schema import checklist_json_schema

    click.echo(json.dumps(checklist_json_schema(), indent=2))


def git_author(path: Path) -> str | None:
    """The email of the last commit that touched `path`, when it is in a git work tree."""
    try:
        found = subprocess.run(  # noqa: S603 - fixed argv, the file name is passed after "--"
            ["git", "log", "-1", "--format=%ae", "--", path.name],  # noqa: S607 - git from PATH
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    email = found.stdout.strip().lower()
    return email if found.returncode == 0 and "@" in email else None


@checklists_group.command("sync")
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--author", help="who wrote these versions (default: the git author of each file)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@reports_errors
def sync_command(directory: Path | None, author: str | None, as_json: bool) -> None:
    """Store new checklist versions from DIRECTORY (default: ./checklists); all or nothing."""
    outcomes = _sync(directory or Path("checklists"), author)
    if as_json:
        click.echo(json.dumps([o.__dict__ for o in outcomes], indent=2))
        return
    for o in outcomes:
        if o.status == "created":
            click.echo(f"{o.application}: created version {o.version} (pending review)")
        else:
            click.echo(f"{o.application}: unchanged (version {o.version})")


def _sync(directory: Path, author: str | None) -> list[checklists.SyncOutcome]:
    def author_of(path: Path) -> str | None:
        return author.strip().lower() if author else git_author(path)

    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        # New versions start pending review: their governance reviewers are emailed a link.
        return reviews.sync_and_request_reviews(
            session,
            directory,
            clock=rt.clock,
            author_of=author_of,
            settings=rt.governance_settings(),
        )


@checklists_group.command("review")
@click.argument("application")
@click.option("--version", "version", type=int, required=True)
@click.option("--approve", "action", flag_value=governance.APPROVE)
@click.option("--request-changes", "action", flag_value=governance.REQUEST_CHANGES)
@click.option("--reviewer", required=True, help="a governance reviewer named in the checklist")
@click.option("--consulted", default="", help="which key users were consulted, and how")
@click.option("--notes", default="")
@reports_errors
def review_command(
    application: str, version: int, action: str | None, reviewer: str, consulted: str, notes: str
) -> None:
    """Record a governance review of one checklist version."""
    if action is None:
        raise click.UsageError("choose --approve or --request-changes")
    with unit_of_work(db.session) as session:
        review = checklists.review_version(
            session,
            application=application,
            version=version,
            action=action,
            reviewer=reviewer,
            consulted=consulted,
            notes=notes,
            clock=runtime(current_app).clock,
        )
        outcome = review.outcome
    click.echo(f"{application} version {version}: {outcome.replace('_', ' ')} by {reviewer}")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    """Run the web app with the built-in server (production: gunicorn gatekeeper.wsgi:app)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"Gatekeeper on http://{host}:{port}/")
    run_simple(host, port, app, threaded=True, request_handler=RedactingRequestHandler)


@cli.command("demo")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--smtp-port", default=8025, show_default=True, type=int, help="the mail catcher")
@click.option("--no-serve", is_flag=True, help="prepare the demo data and exit")
@reports_errors
def demo_command(port: int, host: str, smtp_port: int, no_serve: bool) -> None:
    """Run the whole product locally: SQLite, sample data, mail catcher, worker, web app."""
    from gatekeeper.services import demo, demo_governance

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    migrate_upgrade()
    source = Path("checklists") if Path("checklists").is_dir() else REPO_CHECKLISTS
    instance = Path(app.instance_path)
    for outcome in _sync(
        demo_governance.sync_source(db.session, source, instance), "demo-author@example.com"
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
            _worker_pass(app, "demo")
        except Exception as exc:
            click.echo(f"demo worker: {exc}", err=True)
        stop.wait(2)


@cli.group("users")
def users_group() -> None:
    """Staff accounts for the web UI: release managers, governance reviewers, admins."""


@users_group.command("add")
@click.argument("email")
@click.option("--name", required=True, help="the person's name, shown in the UI")
@click.option("--role", required=True, type=click.Choice(users.ROLES))
@reports_errors
def users_add(email: str, name: str, role: str) -> None:
    """Create an account; its owner signs in with a link emailed to EMAIL."""
    with unit_of_work(db.session) as session:
        user = users.add_user(
            session, email=email, name=name, role=role, clock=runtime(current_app).clock
        )
        added = f"user {user.email} ({user.role}) added; they sign in at /login"
    click.echo(added)


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """List accounts with their roles and whether they are active."""
    rows = [
        {
            "email": u.email,
            "name": u.name,
            "role": u.role,
            "active": u.active,
            "created_at": u.created_at.isoformat(),
            "deactivated_at": u.deactivated_at.isoformat() if u.deactivated_at else None,
        }
        for u in users.list_users(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "active" if row["active"] else "deactivated"
        click.echo(f"{row['email']:<36} {row['role']:<20} {state:<12} {row['name']}")


@users_group.command("deactivate")
@click.argument("email")
@reports_errors
def users_deactivate(email: str) -> None:
    """Deactivate an account: its sessions end at once and it can no longer sign in."""
    with unit_of_work(db.session) as session:
        user = users.deactivate_user(session, email, clock=runtime(current_app).clock)
        done = f"user {user.email} deactivated; their sessions have ended"
    click.echo(done)


@users_group.command("activate")
@click.argument("email")
@reports_errors
def users_activate(email: str) -> None:
    """Let a deactivated account sign in again (with a new emailed link)."""
    with unit_of_work(db.session) as session:
        user = users.activate_user(session, email, clock=runtime(current_app).clock)
        done = f"user {user.email} is active again"
    click.echo(done)


@cli.group("tokens")
def tokens_group() -> None:
    """API tokens for CI and scripts: shown once, stored hashed, scoped, revocable."""


@tokens_group.command("create")
@click.option("--name", required=True, help="unique name; it is the actor in the audit trail")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(tokens.SCOPES),
    help="repeat for several scopes",
)
@click.option("--owner", help="the accountable person (needed to assemble packages)")
@reports_errors
def tokens_create(name: str, scopes: tuple[str, ...], owner: str | None) -> None:
    """Create a token and print it once; only its hash is stored."""
    with unit_of_work(db.session) as session:
        issued = tokens.create_token(
            session, name=name, scopes=scopes, owner=owner, clock=runtime(current_app).clock
        )
    click.echo(issued.secret)
    click.echo(
        f"token {issued.name!r} with scopes {', '.join(issued.scopes)}: copy it now, "
        "it is not shown again",
        err=True,
    )


@tokens_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(as_json: bool) -> None:
    """List tokens (names, prefixes, scopes, last use); never the secrets."""
    rows = [
        {
            "name": t.name,
            "prefix": t.prefix,
            "scopes": t.scopes.split(),
            "owner": t.owner,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens.list_tokens(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else f"last used {row['last_used_at'] or 'never'}"
        click.echo(f"{row['name']:<24} {row['prefix']}…  {' '.join(row['scopes']):<40} {state}")


@tokens_group.command("revoke")
@click.argument("name")
@reports_errors
def tokens_revoke(name: str) -> None:
    """Revoke a token at once; requests using it get 401 from now on."""
    with unit_of_work(db.session) as session:
        tokens.revoke_token(session, name, clock=runtime(current_app).clock)
    click.echo(f"token {name!r} revoked")


@cli.group("gate")
def gate_group() -> None:
    """Ask whether a package may be released."""


@gate_group.command("check", with_appcontext=False)
@click.argument("package")
@click.option("--url", envvar="GATEKEEPER_URL", help="a remote Gatekeeper server (else local)")
@click.option("--token", envvar="GATEKEEPER_TOKEN", help="API token for --url (gate:read)")
@click.option("--json", "as_json", is_flag=True, help="print the gate as JSON")
@click.option("--wait", is_flag=True, help="poll until the gate is open or blocked")
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="seconds, with --wait"
)
@click.option(
    "--interval", type=float, default=10.0, show_default=True, help="seconds between polls"
)
@click.pass_context
def gate_check(
    ctx: click.Context,
    package: str,
    url: str | None,
    token: str | None,
    as_json: bool,
    wait: bool,
    timeout: float,
    interval: float,
) -> None:
    """Exit 0 open, 1 blocked, 3 pending, 4 error (the gate fails closed)."""
    try:
        read = _gate_reader(ctx, url, token)
        gate = read(package)
        if wait:
            gate = gate_client.wait_for_decision(
                read,
                package,
                first=gate,
                timeout=timeout,
                interval=interval,
                on_progress=lambda g: click.echo(gate_client.progress_line(g), err=True),
            )
    except (gate_client.GateUnavailable, GatekeeperError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(gate_client.EXIT_ERROR)
    except Exception as exc:
        click.echo(f"error: the gate could not be read ({type(exc).__name__})", err=True)
        ctx.exit(gate_client.EXIT_ERROR)
    click.echo(json.dumps(gate, indent=2) if as_json else gate_client.describe(gate))
    ctx.exit(gate_client.EXIT_BY_STATUS[gate["status"]])


@gate_group.command("badge-url")
@click.argument("package")
@reports_errors
def gate_badge_url(package: str) -> None:
    """Print the signed URL of the package's gate status badge (SVG)."""
    packages.get_package(db.session, package)
    settings = runtime(current_app).settings
    signature = badge_signature(settings.secret_keys, package)
    click.echo(f"{settings.base_url}/badges/{package}/{signature}.svg")


def _gate_reader(
    ctx: click.Context, url: str | None, token: str | None
) -> Callable[[str], dict[str, Any]]:
    if url:
        if not token:
            raise gate_client.GateUnavailable("--url needs --token or GATEKEEPER_TOKEN")
        return gate_client.remote_reader(url, token)
    app = ctx.ensure_object(ScriptInfo).load_app()

    def read_local(key: str) -> dict[str, Any]:
        with app.app_context():
            try:
                settings = runtime(app).settings
                return packages.evaluate_gate(
                    db.session,
                    key,
                    clock=runtime(app).clock,
                    overdue_policy=settings.overdue_review_policy,
                    finding_warn_after=runtime(app).governance_settings().finding_warn_after,
                ).to_dict()
            finally:
                db.session.remove()

    return read_local


def _worker_pass(app: Flask, worker_id: str) -> mail_worker.PassReport:
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
            )
        finally:
            db.session.remove()


@cli.command("worker", with_appcontext=False)
@click.option(
    "--once", is_flag=True, help="one pass (deliver, remind, expire), then exit: for cron"
)
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="seconds between passes"
)
@click.pass_context
def worker_command(ctx: click.Context, once: bool, interval: float) -> None:
    """Deliver queued email (with retries), send reminders and escalations, warn of expiry."""
    app = ctx.ensure_object(ScriptInfo).load_app()
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        try:
            report = _worker_pass(app, worker_id)
        except sa.exc.OperationalError as exc:
            click.echo(f"database unavailable, will retry: {exc.orig}", err=True)
        else:
            delivery = report.delivery
            if (
                once
                or delivery.sent
                or delivery.retried
                or delivery.dead
                or any(report.reminders.values())
            ):
                click.echo(
                    f"sent {delivery.sent}, retrying {delivery.retried}, dead {delivery.dead}; "
                    + ", ".join(f"{k} {v}" for k, v in report.reminders.items())
                )
            for error in delivery.errors:
                click.echo(f"  {error}", err=True)
        if once or stop.wait(interval):
            return


@cli.group("outbox")
def outbox_group() -> None:
    """Inspect queued and dead-lettered email."""


@outbox_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def outbox_status(as_json: bool) -> None:
    """Counts by state, and every dead letter with its last error."""
    counts = worker.outbox_counts(db.session)
    dead = worker.dead_letters(db.session)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "counts": counts,
                    "dead": [
                        {
                            "id": m.id,
                            "to": m.to_address,
                            "subject": m.subject,
                            "error": m.last_error,
                        }
                        for m in dead
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "empty")
    for message in dead:
        click.echo(
            f"dead #{message.id} to {message.to_address}: {message.subject} — {message.last_error}"
        )


@outbox_group.command("retry")
@click.argument("message_id", type=int)
@reports_errors
def outbox_retry(message_id: int) -> None:
    """Queue a dead-lettered message again (after fixing the address or the mail server)."""
    with unit_of_work(db.session) as session:
        row = worker.requeue(session, message_id, clock=runtime(current_app).clock)
    if row is None:
        raise NotFound(f"no dead-lettered message #{message_id}")
    click.echo(f"message #{message_id} queued again")


@cli.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail and release evidence packs."""


@audit_group.command("verify")
@click.option("--expect-head", help="a chain head kept elsewhere (CI log, release email)")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(expect_head: str | None, as_json: bool) -> None:
    """Walk the hash chain; exit 0 intact, 1 with the first bad sequence number."""
    report = audit.verify(db.session, expect_head=expect_head)
    if as_json:
        click.echo(json.dumps(_report(report)))
    elif report.ok:
        click.echo(f"audit chain intact: {report.events} events, head {report.head}")
    else:
        click.echo(
            f"audit chain broken at event {report.first_bad_seq}: {report.problem}", err=True
        )
    sys.exit(0 if report.ok else 1)


def _report(report: Any) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "events": report.events,
        "head": report.head,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
    }


@audit_group.command("export")
@click.argument("package")
@click.option("--format", "output_format", type=click.Choice(["json", "html"]), default="json")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def audit_export(package: str, output_format: str, output: Path | None) -> None:
    """Write the release evidence pack of PACKAGE (to stdout, or --output FILE)."""
    pack = evidence.build(db.session, package, now=runtime(current_app).clock.now())
    if output_format == "json":
        text = json.dumps(pack, indent=2, ensure_ascii=False)
    else:
        text = render_template("audit/evidence.html", pack=pack)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({pack['digest']})", err=True)
    else:
        click.echo(text)


@audit_group.command("verify-export", with_appcontext=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def audit_verify_export(file: Path) -> None:
    """Re-check the hashes of an exported evidence pack (JSON or HTML); exit 0 intact, 1 not."""
    text = file.read_text(encoding="utf-8")
    try:
        pack = json.loads(
            _embedded_json(text) if file.suffix.lower() in (".html", ".htm") else text
        )
        problems = evidence.verify_pack(pack)
    except (ValueError, KeyError, TypeError, GatekeeperError) as exc:
        click.echo(f"error: {file} is not a readable evidence pack ({exc})", err=True)
        sys.exit(1)
    for problem in problems:
        click.echo(problem, err=True)
    if not problems:
        click.echo(
            f"{file}: evidence pack intact ({len(pack['audit_events'])} events, {pack['digest']})"
        )
    sys.exit(1 if problems else 0)


def _embedded_json(html: str) -> str:
    start_tag = '<script type="application/json" id="gatekeeper-evidence">'
    start = html.index(start_tag) + len(start_tag)
    return html[start : html.index("</script>", start)]


@cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def backup_command(path: Path) -> None:
    """Write a consistent backup while the app runs (SQLite: a file copy; PostgreSQL: pg_dump)."""
    written = db_backup.backup(db.engine, path)
    click.echo(f"backup written to {written} ({written.stat().st_size} bytes)")

"""The `gatekeeper` console script: a FlaskGroup whose commands are thin adapters over services."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import upgrade as migrate_upgrade
from flask_migrate.cli import db as db_commands

from gatekeeper.app import create_app, runtime
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import governance
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.errors import GatekeeperError
from gatekeeper.services import checklists
from gatekeeper.settings import SettingsError

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


@checklists_group.command("lint")
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


@checklists_group.command("schema")
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
@with_appcontext
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

    with unit_of_work(db.session) as session:
        return checklists.sync_checklists(
            session, directory, clock=runtime(current_app).clock, author_of=author_of
        )


@checklists_group.command("review")
@click.argument("application")
@click.option("--version", "version", type=int, required=True)
@click.option("--approve", "action", flag_value=governance.APPROVE)
@click.option("--request-changes", "action", flag_value=governance.REQUEST_CHANGES)
@click.option("--reviewer", required=True, help="a governance reviewer named in the checklist")
@click.option("--consulted", default="", help="which key users were consulted, and how")
@click.option("--notes", default="")
@with_appcontext
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
@with_appcontext
def serve_command(host: str, port: int) -> None:
    """Run the web app with the built-in server (production: gunicorn gatekeeper.wsgi:app)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"Gatekeeper on http://{host}:{port}/")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@cli.command("demo")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-serve", is_flag=True, help="prepare the demo data and exit")
@with_appcontext
@reports_errors
def demo_command(port: int, host: str, no_serve: bool) -> None:
    """Run the whole product locally on the embedded defaults (SQLite, sample data)."""
    from gatekeeper.services import demo

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    migrate_upgrade()
    source = Path("checklists") if Path("checklists").is_dir() else REPO_CHECKLISTS
    for outcome in _sync(source, "demo-author@example.com"):
        click.echo(f"checklist {outcome.application} v{outcome.version}: {outcome.status}")
    with unit_of_work(db.session) as session:
        for line in demo.prepare(session, clock=runtime(app).clock):
            click.echo(line)
    click.echo(f"database: {app.config['SQLALCHEMY_DATABASE_URI']}")
    if no_serve:
        return
    click.echo(f"Gatekeeper demo on http://{host}:{port}/  (Ctrl+C to stop)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)

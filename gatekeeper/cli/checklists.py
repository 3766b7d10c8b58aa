"""`gatekeeper checklists …`: lint, schema, sync and governance review of checklist files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.cli.git_history import change_authors
from gatekeeper.cli.options import one_of
from gatekeeper.cli.params import DATABASE_ID
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import governance
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, reviews, tokens


@click.group("checklists", cls=AppGroup)
def group() -> None:
    """Validate, load and review checklist files."""


@group.command("lint", with_appcontext=False)
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


@group.command("schema", with_appcontext=False)
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of the checklist format, for editors."""
    from gatekeeper.checklist_format.schema import checklist_json_schema

    click.echo(json.dumps(checklist_json_schema(), indent=2))


@group.command("sync")
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--author",
    help="who is accountable for these versions; counted as an author of each, with every git "
    "author and committer since its last approved version",
)
@click.option(
    "--token",
    help="an API token whose owner is accountable for this sync (a CI job's own token); "
    "counted like --author",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@reports_errors
def sync_command(
    directory: Path | None, author: str | None, token: str | None, as_json: bool
) -> None:
    """Store new checklist versions from DIRECTORY (default: ./checklists); all or nothing."""
    outcomes = sync_checklists(directory or Path("checklists"), author, token=token)
    if as_json:
        click.echo(json.dumps([o.__dict__ for o in outcomes], indent=2))
        return
    for o in outcomes:
        if o.status == "created":
            click.echo(f"{o.application}: created version {o.version} (pending review)")
            if o.authorship_unknown:
                click.echo(
                    f"  author unknown: two reviewers must approve it ({o.authorship_unknown})"
                )
        else:
            click.echo(f"{o.application}: unchanged (version {o.version})")


def sync_checklists(
    directory: Path, author: str | None, *, token: str | None = None, read_git: bool = True
) -> list[checklists.SyncOutcome]:
    """Sync as `checklists sync` does; `read_git=False` counts only the authors named."""
    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        declared = [a for a in (author, _token_owner(session, token)) if a]
        if rt.settings.sync_require_author and not declared:
            raise ValidationFailed(
                "GATEKEEPER_SYNC_REQUIRE_AUTHOR is on: name who is accountable for these "
                "versions with --author EMAIL, or sync with --token and a CI token that has "
                "an owner"
            )
        # New versions start pending review: their governance reviewers are emailed a link.
        return reviews.sync_and_request_reviews(
            session,
            directory,
            clock=rt.clock,
            declared_authors=declared,
            history=change_authors if read_git else checklists.no_history,
            settings=rt.governance_settings(),
        )


def _token_owner(session: Session, secret: str | None) -> str | None:
    if secret is None:
        return None
    owner = tokens.authenticate(session, secret).owner
    if owner is None:
        raise ValidationFailed(
            "this token has no owner, so it names nobody accountable; give --author EMAIL, or "
            "use a token created with --owner"
        )
    return owner


@group.command("review")
@click.argument("application")
@click.option("--version", "version", type=DATABASE_ID, required=True)
@click.option("--approve", is_flag=True, help="approve the version (needs --consulted)")
@click.option("--request-changes", is_flag=True, help="send the version back (needs --notes)")
@click.option("--reviewer", required=True, help="a governance reviewer named in the checklist")
@click.option("--consulted", default="", help="which key users were consulted, and how")
@click.option("--notes", default="")
@click.pass_context
@reports_errors
def review_command(
    ctx: click.Context,
    application: str,
    version: int,
    approve: bool,
    request_changes: bool,
    reviewer: str,
    consulted: str,
    notes: str,
) -> None:
    """Record a governance review of one checklist version."""
    chosen = one_of(ctx, "approve", "request_changes", required=True)
    action = governance.APPROVE if chosen == "approve" else governance.REQUEST_CHANGES
    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        review = reviews.record_review(
            session,
            application=application,
            version=version,
            action=action,
            reviewer=reviewer,
            consulted=consulted,
            notes=notes,
            clock=rt.clock,
            overdue_policy=rt.settings.overdue_review_policy,
        )
        outcome = review.outcome
    click.echo(f"{application} version {version}: {outcome.replace('_', ' ')} by {reviewer}")

"""`gatekeeper freezes …`: the freeze calendar's versions and their governance review."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.cli.options import one_of
from gatekeeper.cli.params import DATABASE_ID
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import governance
from gatekeeper.runtime import runtime
from gatekeeper.services import freezes


@click.group("freezes", cls=AppGroup)
def group() -> None:
    """The freeze calendar (checklists/freezes.yaml): its versions and their review."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Every synced version of the freeze calendar and its state."""
    rows = [
        {
            "version": v.version,
            "state": v.state,
            "sha256": v.sha256,
            "windows": [w.id for w in freezes.calendar_of(v).windows],
            "reviewed_by": v.reviewed_by,
        }
        for v in freezes.versions(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no freeze calendar synced yet (checklists/freezes.yaml, then checklists sync)")
    for row in rows:
        click.echo(
            f"version {row['version']}: {str(row['state']).replace('_', ' ')}; windows: "
            f"{', '.join(row['windows']) or 'none'}"
        )


@group.command("review")
@click.option("--version", "version", type=DATABASE_ID, required=True)
@click.option("--approve", is_flag=True, help="approve the version: the gate applies it")
@click.option("--request-changes", is_flag=True, help="send the version back (needs --notes)")
@click.option("--reviewer", required=True, help="a reviewer named in governance.reviewers")
@click.option("--notes", default="")
@click.pass_context
@reports_errors
def review_command(
    ctx: click.Context,
    version: int,
    approve: bool,
    request_changes: bool,
    reviewer: str,
    notes: str,
) -> None:
    """Approve a freeze calendar version, or request changes to it."""
    chosen = one_of(ctx, "approve", "request_changes", required=True)
    action = governance.APPROVE if chosen == "approve" else governance.REQUEST_CHANGES
    with unit_of_work(db.session) as session:
        stored = freezes.review_calendar(
            session,
            version=version,
            action=action,
            reviewer=reviewer,
            notes=notes,
            clock=runtime(current_app).clock,
        )
        state = stored.state
    click.echo(f"freeze calendar version {version}: {state.replace('_', ' ')} by {reviewer}")

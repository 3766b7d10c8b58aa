"""`gatekeeper packages …`: release-package operations from the command line."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import GatekeeperError, ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import emergencies, packages

EXIT_REFUSED = 1  # the package is in no state for it (not submitted, already, gate open, unknown)
EXIT_BAD_INPUT = 2  # as click's usage errors: an empty reason, an application without emergency:


@click.group("packages", cls=AppGroup)
def group() -> None:
    """Release packages."""


@group.command("emergency")
@click.argument("key")
@click.option("--reason", required=True, help="why this release cannot wait (approvers read it)")
@click.option(
    "--by",
    "actor",
    default=None,
    help="the release manager declaring it (default: the package's assembler); they cannot "
    "also approve it",
)
@click.option("--json", "as_json", is_flag=True, help="print the gate as JSON")
def emergency_command(key: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Declare an emergency on submitted package KEY: its emergency approvers are emailed.

    Exit status: 0 declared, 1 refused (unknown package, not submitted, already declared, gate
    already open), 2 bad input (no reason, an application whose checklist has no emergency:
    section).
    """
    rt = runtime(current_app)
    try:
        with unit_of_work(db.session) as session:
            declarer = actor or packages.get_package(session, key).assembled_by
            emergencies.declare(
                session,
                key,
                reason=reason,
                actor=declarer,
                clock=rt.clock,
                links=rt.link_settings(),
            )
            gate = packages.evaluate_gate(
                session, key, clock=rt.clock, overdue_policy=rt.settings.overdue_review_policy
            )
    except ValidationFailed as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except GatekeeperError as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(EXIT_REFUSED) from None
    if as_json:
        click.echo(json.dumps(gate.to_dict(), indent=2))
        return
    click.echo(f"{key}: emergency declared by {declarer}; gate {gate.status} (mode emergency)")
    for blocker in gate.blockers:
        click.echo(f"  {blocker.code}: {blocker.message}")
    if gate.deferred:
        click.echo(f"  deferred to the post-implementation review: {len(gate.deferred)}")

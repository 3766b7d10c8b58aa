"""`gatekeeper findings …`: list post-release findings and triage them into classes."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import finding as finding_rules
from gatekeeper.runtime import runtime
from gatekeeper.services import findings


@click.group("findings", cls=AppGroup)
def group() -> None:
    """Problems found after releases, filed against checklists."""


@group.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(finding_rules.FINDING_STATES))
@click.option("--application", default=None)
@click.option("--json", "as_json", is_flag=True)
def list_command(states: tuple[str, ...], application: str | None, as_json: bool) -> None:
    """List findings, newest first."""
    rows = [
        {
            "finding": f.ref,
            "application": f.application.slug,
            "package": f.package.key if f.package else None,
            "state": f.state,
            "classification": f.classification,
            "item": f"{f.escaped_section_id}.{f.escaped_item_id}" if f.escaped_item_id else None,
            "reported_at": f.reported_at.isoformat(),
        }
        for f in findings.list_findings(db.session, states=states, application=application)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        escaped = f" past {row['item']}" if row["item"] else ""
        label = finding_rules.class_label(row["classification"], row["state"])
        click.echo(f"{row['finding']}  {row['application']}  {row['state']}  {label}{escaped}")


@group.command("triage")
@click.argument("ref")
@click.option(
    "--class",
    "classification",
    required=True,
    type=click.Choice(finding_rules.CLASSIFICATIONS),
    help="escaped_past (name --item), uncovered, or not_a_checklist_matter (needs --rationale)",
)
@click.option("--item", default="", help="section.item of the checklist version of the release")
@click.option("--reviewer", required=True, help="a governance reviewer named in the checklist")
@click.option("--rationale", default="")
@reports_errors
def triage_command(ref: str, classification: str, item: str, reviewer: str, rationale: str) -> None:
    """Classify one finding, as one of its checklist's governance reviewers."""
    with unit_of_work(db.session) as session:
        found = findings.triage_as_reviewer(
            session,
            ref,
            classification=classification,
            item=item,
            reviewer=reviewer,
            rationale=rationale,
            clock=runtime(current_app).clock,
        )
        said = (
            f"{found.ref}: {found.state}, "
            f"{finding_rules.class_label(found.classification, found.state)}"
        )
        if found.escaped_item_id:
            said += f" ({found.escaped_section_id}.{found.escaped_item_id})"
    click.echo(said)

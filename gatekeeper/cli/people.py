"""`gatekeeper people …`: record who is away and when they are back; deputies sign meanwhile."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import deputies

ACTOR = "cli"


def _moment(value: str, option: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 date and time (UTC unless it names its offset)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(
            f"{option} {value!r} is not a date (2026-12-20) or a date and time"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.group("people", cls=AppGroup)
def group() -> None:
    """Absences: while someone is away, the deputies their checklists name sign in their place."""


@group.command("away")
@click.argument("email")
@click.option("--from", "starts", default=None, help="when the absence starts (default: now)")
@click.option("--until", "ends", required=True, help="when they are back (the day, or a time)")
@click.option("--note", default="", help="why, or whom to ask meanwhile (shown to managers)")
@reports_errors
def away_command(email: str, starts: str | None, ends: str, note: str) -> None:
    """Record that EMAIL is away; an absence in force hands their open requests over now."""
    clock = runtime(current_app).clock
    with unit_of_work(db.session) as session:
        row = deputies.record_absence(
            session,
            person=email,
            starts_at=_moment(starts, "--from") if starts else clock.now(),
            ends_at=_moment(ends, "--until"),
            note=note,
            actor=ACTOR,
            clock=clock,
            links=runtime(current_app).link_settings(),
        )
        said = f"{row.person} away from {row.starts_at.isoformat()} until {row.ends_at.isoformat()}"
    click.echo(said)


@group.command("back")
@click.argument("email")
@reports_errors
def back_command(email: str) -> None:
    """Record that EMAIL is back: what their deputies have not answered returns to them."""
    with unit_of_work(db.session) as session:
        ended = deputies.person_back(
            session,
            email,
            actor=ACTOR,
            clock=runtime(current_app).clock,
            links=runtime(current_app).link_settings(),
        )
        said = f"{ended[0].person} is back ({len(ended)} absence(s) ended)"
    click.echo(said)


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Absences in force or to come, soonest first."""
    now = runtime(current_app).clock.now()
    rows = [
        {
            "id": a.id,
            "person": a.person,
            "from": a.starts_at.isoformat(),
            "until": a.ends_at.isoformat(),
            "in_force": a.starts_at <= now,
            "note": a.note,
            "recorded_by": a.recorded_by,
        }
        for a in deputies.list_absences(db.session, now=now)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "away" if row["in_force"] else "to come"
        click.echo(f"{row['person']}  {state}  {row['from']} → {row['until']}  {row['note']}")

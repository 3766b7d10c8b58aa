"""`gatekeeper outbox …`: what the mail worker has queued, and dead letters to queue again."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.cli.params import DATABASE_ID
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import NotFound
from gatekeeper.notify import worker
from gatekeeper.runtime import runtime


@click.group("outbox", cls=AppGroup)
def group() -> None:
    """Inspect queued and dead-lettered email and webhooks."""


@group.command("status")
@click.option("--json", "as_json", is_flag=True)
def outbox_status(as_json: bool) -> None:
    """Counts by state, every dead letter with its last error, and the newest messages not
    sent because their link died first (moot), with why."""
    counts = worker.outbox_counts(db.session)
    dead = worker.dead_letters(db.session)
    moot = worker.moot_messages(db.session)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "counts": counts,
                    "dead": [
                        {
                            "id": m.id,
                            "kind": m.kind,
                            "to": m.to_address,
                            "subject": m.subject,
                            "error": m.last_error,
                        }
                        for m in dead
                    ],
                    "moot": [
                        {"id": m.id, "to": m.to_address, "subject": m.subject, "why": m.last_error}
                        for m in moot
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "empty")
    for label, messages in (("dead", dead), ("moot", moot)):
        for message in messages:
            click.echo(
                f"{label} #{message.id} to {message.to_address}: {message.subject} — "
                f"{message.last_error}"
            )


@group.command("retry")
@click.argument("message_id", type=DATABASE_ID)
@reports_errors
def outbox_retry(message_id: int) -> None:
    """Queue a dead-lettered message again (after fixing the address or the mail server)."""
    with unit_of_work(db.session) as session:
        row = worker.requeue(session, message_id, clock=runtime(current_app).clock)
    if row is None:
        raise NotFound(f"no dead-lettered message #{message_id}")
    click.echo(f"message #{message_id} queued again")

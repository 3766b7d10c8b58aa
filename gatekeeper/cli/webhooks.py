"""`gatekeeper webhooks …`: where Gatekeeper posts its events; each secret is printed once."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.cli.params import DATABASE_ID
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import webhooks

ACTOR = "cli"


@click.group("webhooks", cls=AppGroup)
def group() -> None:
    """Webhook subscriptions: signed (Standard Webhooks) posts of gate and package events."""


def _secret_once(secret: str, what: str) -> None:
    click.echo(secret)
    click.echo(f"{what}: copy the signing secret now, it is not shown again", err=True)


@group.command("add")
@click.option("--url", required=True, help="http(s) URL that receives the posts")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(webhooks.EVENTS),
    help="repeat for several events",
)
@reports_errors
def webhooks_add(url: str, events: tuple[str, ...]) -> None:
    """Subscribe URL to events and print its signing secret once."""
    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        subscription, secret = webhooks.add_subscription(
            session,
            url=url,
            events=events,
            actor=ACTOR,
            clock=rt.clock,
            settings=rt.webhook_settings(),
        )
        number = subscription.id
    _secret_once(secret, f"webhook #{number} for {', '.join(events)}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
def webhooks_list(as_json: bool) -> None:
    """Every subscription, with what waits and what is dead; never the secrets."""
    rows = webhooks.list_subscriptions(db.session)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "url": r.url,
                        "events": list(r.events),
                        "created_by": r.created_by,
                        "created_at": r.created_at.isoformat(),
                        "rotated_at": r.rotated_at.isoformat() if r.rotated_at else None,
                        "queued": r.queued,
                        "dead": r.dead,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("no webhook subscriptions")
    for r in rows:
        click.echo(f"#{r.id} {r.url} [{', '.join(r.events)}] queued {r.queued}, dead {r.dead}")


@group.command("remove")
@click.argument("subscription_id", type=DATABASE_ID)
@reports_errors
def webhooks_remove(subscription_id: int) -> None:
    """Remove a subscription, its delivery log and whatever is still queued for it."""
    with unit_of_work(db.session) as session:
        webhooks.remove_subscription(
            session, subscription_id, actor=ACTOR, clock=runtime(current_app).clock
        )
    click.echo(f"webhook #{subscription_id} removed")


@group.command("rotate-secret")
@click.argument("subscription_id", type=DATABASE_ID)
@reports_errors
def webhooks_rotate(subscription_id: int) -> None:
    """Give a subscription a new signing secret and print it once; the old one stops at once."""
    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        secret = webhooks.rotate_secret(
            session,
            subscription_id,
            actor=ACTOR,
            clock=rt.clock,
            settings=rt.webhook_settings(),
        )
    _secret_once(secret, f"webhook #{subscription_id}")

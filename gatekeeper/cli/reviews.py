"""`gatekeeper reviews …`: learning reviews, exported to share with the organisation."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import learning
from gatekeeper.runtime import runtime
from gatekeeper.services import learning_reviews


@click.group("reviews", cls=AppGroup)
def group() -> None:
    """Blameless learning reviews of releases that failed their users."""


@group.command("export")
@click.argument("key")
@reports_errors
def reviews_export(key: str) -> None:
    """Print learning review KEY (LR-n) as Markdown; what people typed is escaped."""
    try:
        review = learning_reviews.find_review(db.session, key)
        click.echo(learning_reviews.export_markdown(db.session, review), nl=False)
    finally:
        db.session.rollback()


@group.command("open")
@click.argument("package_key")
@click.option("--application", required=True, help="the application of the package it is about")
@click.option("--reason", required=True, help="what happened that the release should learn from")
@click.option(
    "--as",
    "actor",
    required=True,
    help="your staff account: a release manager or a governance reviewer",
)
@reports_errors
def reviews_open(package_key: str, application: str, reason: str, actor: str) -> None:
    """Open a learning review of APPLICATION in release PACKAGE_KEY by hand."""
    rt = runtime(current_app)
    with unit_of_work(db.session) as session:
        review = learning_reviews.open_by_hand(
            session,
            package_key,
            application,
            reason=reason,
            actor=actor,
            now=rt.clock.now(),
            due_hours=rt.governance_settings().learning_review_due_hours,
        )
        ref, due_at = learning.review_ref(review.id), review.due_at
    click.echo(f"{ref} opened, due {due_at:%Y-%m-%d %H:%M} UTC")

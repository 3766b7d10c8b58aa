"""`gatekeeper reviews …`: learning reviews, exported to share with the organisation."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
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

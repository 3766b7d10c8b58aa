"""`gatekeeper backup PATH`: a consistent copy of the database while the app runs."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db import backup as db_backup
from gatekeeper.db.base import db


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
@with_appcontext
def command(path: Path) -> None:
    """Write a consistent backup while the app runs (SQLite: a file copy; PostgreSQL: pg_dump)."""
    written = db_backup.backup(db.engine, path)
    click.echo(f"backup written to {written} ({written.stat().st_size} bytes)")

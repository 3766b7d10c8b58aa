"""Command-line parameter types shared by command groups."""

from __future__ import annotations

import click

from gatekeeper.db.base import MAX_ID

# An id or version number the database can hold; anything larger is a usage error (exit 2)
# before any query runs.
DATABASE_ID = click.IntRange(1, MAX_ID)

"""`gatekeeper db …`: Flask-Migrate's Alembic commands on the top-level migrations/ folder."""

from flask_migrate.cli import db as group

__all__ = ["group"]

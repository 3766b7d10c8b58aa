"""Consistent backups while the app runs: SQLite's online backup API, pg_dump for PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from gatekeeper.domain.errors import Unavailable, ValidationFailed


def backup(engine: Engine, target: Path) -> Path:
    """Write a consistent copy of the database to `target` and return it."""
    if target.exists():
        raise ValidationFailed(f"{target} exists; backups never overwrite a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        return _sqlite(engine, target)
    return _postgres(engine, target)


def _sqlite(engine: Engine, target: Path) -> Path:
    source = engine.raw_connection()
    try:
        destination = sqlite3.connect(target)
        try:
            # Copies page by page and restarts if a writer changes the database meanwhile, so
            # the copy is one consistent snapshot even under load.
            source.driver_connection.backup(destination, pages=1024)  # type: ignore[union-attr]
        finally:
            destination.close()
    finally:
        source.close()
    return target


def _postgres(engine: Engine, target: Path) -> Path:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise Unavailable("pg_dump is not installed; install the PostgreSQL client tools")
    url = make_url(str(engine.url)).set(drivername="postgresql")
    completed = subprocess.run(  # noqa: S603 - fixed program, URL passed as one argument
        [
            pg_dump,
            "--format=custom",
            "--no-owner",
            f"--file={target}",
            url.render_as_string(hide_password=False),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if completed.returncode != 0:
        target.unlink(missing_ok=True)
        raise Unavailable(f"pg_dump failed: {completed.stderr.strip()[:500]}")
    return target

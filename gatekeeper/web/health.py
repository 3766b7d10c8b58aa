"""Health checks for load balancers: /healthz (the process answers), /readyz (it can serve)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.db.schema_version import schema_version
from gatekeeper.domain.errors import Unavailable
from gatekeeper.services import audit

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    db.session.execute(sa.text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the database is at this code's migrations and its data can be read; else 503
    with the reason (a database that cannot answer is mapped by web/errors like any other)."""
    version = schema_version(db.session.connection(), current_app.extensions["migrate"].directory)
    if not version.at_head:
        raise Unavailable(
            "the database is not at this version's migrations: run `gatekeeper db upgrade`",
            details={"database_at": list(version.current), "code_expects": list(version.expected)},
        )
    # Past the schema: the newest audit event is what every gate poll reads first.
    audit.latest(db.session)
    return jsonify(status="ready", migrations=list(version.current))

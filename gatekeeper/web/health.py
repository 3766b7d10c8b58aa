"""Liveness endpoint for load balancers."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    db.session.execute(sa.text("SELECT 1"))
    return jsonify(status="ok")

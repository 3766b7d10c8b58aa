"""JSON API under /api/v1: bearer tokens only (the session cookie is ignored), error envelopes."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from gatekeeper.api import audit, checklists, packages
from gatekeeper.api.auth import bp

# The endpoint modules attach their routes to `bp` when imported.
ENDPOINT_MODULES = (audit, checklists, packages)


def register_api(app: Flask, csrf: CSRFProtect) -> None:
    # Safe because the API authenticates by bearer token only and never reads the session.
    csrf.exempt(bp)
    app.register_blueprint(bp)
